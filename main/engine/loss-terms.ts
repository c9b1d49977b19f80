/** The names of the DSD loss's terms (spec §3), shared by the loss and its WebGPU kernel. */

/** The term names, exactly as in golden/dsd/loss.json. */
export const TERM_NAMES = [
  'dce_Y',
  'dce_D4',
  'dce_D3',
  'dce_D2',
  'dce_D1',
  'kl_dec_D4',
  'kl_dec_D3',
  'kl_dec_D2',
  'kl_enc_E1',
  'kl_enc_E2',
  'kl_enc_E3',
] as const

export type TermName = (typeof TERM_NAMES)[number]
