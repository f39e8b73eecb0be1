/**
 * The model's own invariants, always on (TigerBeetle style). A broken one is a bug in the
 * model or in a device revision, never bad input: the run reports it as `model-assert`.
 */
export class ModelAssertError extends Error {
  override readonly name = 'ModelAssertError';
}

export function assert(cond: boolean, msg: string): asserts cond {
  if (!cond) throw new ModelAssertError(msg);
}
