/**
 * DICOM import and export: a CT/MR image series from a folder → Volume (series.ts, after the
 * folder scan in scan.ts), a DICOM SEG → label map on that series' grid (seg-read.ts), and a
 * label map → DICOM SEG (seg-write.ts). Parsing uses dcmjs (parse.ts).
 */
export { isDicomFile, lpsToRas, readDicomHeader } from './parse'
export { scanDicomFolder, type DicomScan, type DicomSeriesInfo } from './scan'
export { readDicomSeries, type DicomVolume, type ReadDicomSeriesOptions } from './series'
export { readDicomSeg, type DicomSegResult, type SegSegment } from './seg-read'
export { writeDicomSeg, type SegSegmentSpec, type WriteDicomSegOptions } from './seg-write'
