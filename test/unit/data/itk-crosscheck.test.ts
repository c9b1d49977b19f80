/**
 * Cross-check with ITK (through plastimatch, Debian's ITK 5.2-based tool): ITK reads the NIfTI
 * files our writer makes with the same size, spacing, origin and direction (ITK reports them
 * in LPS), and a file ITK rewrites reads back in our reader with the same voxels and affine.
 * plastimatch must be installed (.ci/apt-deps.sh installs it); when it is missing this suite
 * FAILS with an install hint — it never skips.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { readNifti, writeNifti } from '../../../main/data/nifti'
import { sharedPath, tmpDir } from '../../helpers/shared'

const TMP = tmpDir('itk')
mkdirSync(TMP, { recursive: true })
afterAll(() => rmSync(TMP, { recursive: true, force: true }))

function plastimatch(args: string[]): string {
  const r = spawnSync('plastimatch', args, { encoding: 'utf8' })
  if (r.error) throw new Error(`plastimatch is not installed (apt-get install plastimatch): ${r.error.message}`)
  if (r.status !== 0) throw new Error(`plastimatch ${args.join(' ')} failed: ${r.stderr || r.stdout}`)
  return r.stdout
}

function itkHeader(file: string) {
  const out = plastimatch(['header', file])
  const nums = (key: string) => {
    const line = out.split('\n').find((l) => l.startsWith(`${key} =`))
    if (!line) throw new Error(`plastimatch header: no "${key}" in\n${out}`)
    return line.split('=')[1].trim().split(/\s+/).map(Number)
  }
  return { size: nums('Size'), spacing: nums('Spacing'), origin: nums('Origin'), direction: nums('Direction') }
}

const tcia = sharedPath('data/tcia-brain-tumor-progression/imagesTr')
const cases = [
  join(tcia, readdirSync(tcia).sort()[0]), // int16, oblique, LAS, 0.69×0.69×6.5 mm
  sharedPath('data/msd-task04-hippocampus/imagesTr/hippocampus_001.nii.gz'), // uint8
  sharedPath('data/msd-task04-hippocampus/labelsTr/hippocampus_003.nii.gz'), // float32 label
]

describe('ITK reads what we write, and we read what ITK writes', () => {
  for (const source of cases) {
    it(source.split('/').slice(-2).join('/'), async () => {
      const vol = await readNifti(source)
      const ours = join(TMP, `ours-${source.split('/').pop()}`)
      await writeNifti(ours, vol)

      // ITK's view of our file: RAS affine → LPS origin and direction cosines.
      const h = itkHeader(ours)
      const A = vol.affine
      expect(h.size).toEqual(vol.shape)
      h.spacing.forEach((s, i) => expect(s).toBeCloseTo(vol.spacing[i], 3))
      const lps = [-1, -1, 1]
      h.origin.forEach((o, i) => expect(o).toBeCloseTo(lps[i] * A[i][3], 3))
      for (let r = 0; r < 3; r++) {
        for (let c = 0; c < 3; c++) {
          expect(h.direction[r * 3 + c]).toBeCloseTo((lps[r] * A[r][c]) / vol.spacing[c], 3)
        }
      }

      // ITK rewrites the file; our reader gets the same voxels and geometry back.
      const itk = join(TMP, `itk-${source.split('/').pop()}`)
      plastimatch(['convert', '--input', ours, '--output-img', itk])
      const back = await readNifti(itk)
      expect(back.shape).toEqual(vol.shape)
      for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) expect(back.affine[r][c]).toBeCloseTo(A[r][c], 3)
      let maxDiff = 0
      for (let i = 0; i < vol.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(Number(back.data[i]) - Number(vol.data[i])))
      expect(maxDiff).toBe(0)
    })
  }
})
