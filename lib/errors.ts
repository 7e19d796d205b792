/**
 * One error formatter for the JS layer: messages take the form
 * `Expected <what> for <name> but received <value>`.
 */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'undefined';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? value.slice(0, 57) + '...' : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as { length: number }).length}`;
  if (typeof value === 'function') return 'a function';
  return `an object (${Object.keys(value as object).slice(0, 5).join(', ')})`;
}

/** TypeError in the house form. */
export function typeError(what: string, name: string, value: unknown): TypeError {
  return new TypeError(`Expected ${what} for ${name} but received ${describe(value)}`);
}

/** RangeError in the house form. */
export function rangeError(what: string, name: string, value: unknown, hint?: string): RangeError {
  return new RangeError(`Expected ${what} for ${name} but received ${describe(value)}${hint ? `; ${hint}` : ''}`);
}

/** Checks an option is a finite number within [min, max]. */
export function checkNumber(value: unknown, name: string, min = -Infinity, max = Infinity, integer = false): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw typeError(integer ? 'an integer' : 'a finite number', name, value);
  if (integer && !Number.isInteger(value)) throw typeError('an integer', name, value);
  if (value < min || value > max) {
    const range = max === Infinity ? `>= ${min}` : min === -Infinity ? `<= ${max}` : `in [${min}, ${max}]`;
    throw rangeError(`${integer ? 'an integer' : 'a number'} ${range}`, name, value);
  }
  return value;
}
