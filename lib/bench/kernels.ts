/** `gpt-native bench kernels`: placeholder replaced below once the kernel table is wired. */
export function benchKernels(): void {
  throw new Error('bench kernels: not wired yet');
}
