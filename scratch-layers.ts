import { initBackend } from './main/engine/backends'
import { createModel } from './main/engine/model'
import { AdamW } from './main/engine/optimizer'
import { tf } from './main/engine/tf'
import { trainStep } from './main/engine/train-step'
import { Rng } from './main/engine/random'
await initBackend('webgpu')
const P = 32
const model = createModel({ backbone: 'dynunet', preset: 'small', patch: [P, P, P] })
const opt = new AdamW({ lr: 1e-3, weightDecay: 1e-5 })
const rng = new Rng(1)
const n = 2 * P * P * P
const x = tf.tensor5d(rng.normalArray(n), [2, P, P, P, 1])
const yv = new Int32Array(n); for (let i = 0; i < n; i++) yv[i] = rng.int(3)
const y = tf.tensor4d(yv, [2, P, P, P], 'int32')
await trainStep(model, opt, x, y, 'dsd')
const rows: [string, number][] = []
const prof = await tf.profile(async () => { await trainStep(model, opt, x, y, 'dsd') })
for (const k of prof.kernels) if (k.name.startsWith('DsdConv')) rows.push([`${k.name} ${JSON.stringify(k.inputShapes)}`, (await k.kernelTimeMs) as number])
rows.sort((a, b) => b[1] - a[1])
let tot = 0; for (const r of rows) tot += r[1]
console.log('conv total', tot.toFixed(0))
for (const r of rows.slice(0, 40)) console.log(r[1].toFixed(1).padStart(8), r[0])
