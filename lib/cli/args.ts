/**
 * A small, strict command-line parser shared by every subcommand: `--name value`, `--name=value`,
 * boolean `--flag`. Unknown or malformed options throw a UsageError (the CLI prints it and exits 2).
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export type OptionKind = 'string' | 'number' | 'int' | 'boolean';
export interface OptionSpec {
  kind: OptionKind;
  default?: string | number | boolean;
  help: string;
}
export type OptionSpecs = Record<string, OptionSpec>;
export type Parsed = { _: string[]; [key: string]: string | number | boolean | string[] | undefined };

/** Parses argv against specs (keys in kebab-case). Example: `parseArgs(['--m','256'], {m:{kind:'int',help:''}})`. */
export function parseArgs(argv: string[], specs: OptionSpecs): Parsed {
  const out: Parsed = { _: [] as string[] };
  for (const [k, s] of Object.entries(specs)) if (s.default !== undefined) out[k] = s.default;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      out._.push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    const spec = specs[name];
    if (!spec) throw new UsageError(`Unknown option --${name}. Run with --help to see the options.`);
    if (spec.kind === 'boolean') {
      if (value === undefined) out[name] = true;
      else if (value === 'true' || value === '1') out[name] = true;
      else if (value === 'false' || value === '0') out[name] = false;
      else throw new UsageError(`Expected true or false for --${name} but received ${JSON.stringify(value)}`);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UsageError(`Expected a value after --${name}`);
      value = argv[++i];
    }
    if (spec.kind === 'string') out[name] = value;
    else {
      const n = Number(value);
      if (value.trim() === '' || !Number.isFinite(n) || (spec.kind === 'int' && !Number.isInteger(n)))
        throw new UsageError(
          `Expected ${spec.kind === 'int' ? 'an integer' : 'a number'} for --${name} but received ${JSON.stringify(value)}`,
        );
      out[name] = n;
    }
  }
  return out;
}

/** Help text for a subcommand. */
export function helpText(usage: string, specs: OptionSpecs): string {
  const lines = [`Usage: ${usage}`, '', 'Options:'];
  for (const [k, s] of Object.entries(specs)) {
    const def = s.default !== undefined && s.kind !== 'boolean' ? ` (default ${s.default})` : '';
    lines.push(`  --${k}${s.kind === 'boolean' ? '' : ' <' + s.kind + '>'}`.padEnd(30) + s.help + def);
  }
  return lines.join('\n');
}
