"""Cross-check for nifti-roundtrip: nibabel reads the files our writer made (argv[1]/ours.json)
and writes files of its own for our reader (argv[1]/theirs/*), with their expected values.
Prints one JSON object on stdout."""
import json, os, sys
import numpy as np
import nibabel as nib

root = sys.argv[1]
ours = json.load(open(os.path.join(root, 'ours.json')))
out = {'ours': {}, 'theirs': {}}
for name in ours:
    img = nib.load(os.path.join(root, name))
    arr = np.asanyarray(img.dataobj)
    h = img.header
    out['ours'][name] = {
        'shape': [int(x) for x in img.shape],
        'dtype': str(h.get_data_dtype().newbyteorder('=')),
        'endianness': h.endianness,
        'affine': img.affine.tolist(),
        'qform': h.get_qform().tolist(),
        'codes': [int(h['qform_code']), int(h['sform_code'])],
        'data': arr.flatten(order='F').astype(np.float64).tolist(),
    }

os.makedirs(os.path.join(root, 'theirs'), exist_ok=True)
rng = np.random.default_rng(7)
c, s = np.cos(0.4), np.sin(0.4)
oblique = np.array([[-0.8 * c, 0.9 * s, 0, 20.5], [0.8 * s, 0.9 * c, 0, -11.25], [0, 0, 2.5, 3], [0, 0, 0, 1]])
specs = []
for dt in ['u1', 'i1', 'i2', 'u2', 'i4', 'u4', 'f4', 'f8']:
    for endian in ['<', '>']:
        for ver in [1, 2]:
            specs.append((dt, endian, ver, 3))
specs.append(('i2', '<', 1, 4))
specs.append(('f4', '>', 2, 4))
for dt, endian, ver, nd in specs:
    shape = (6, 5, 4) if nd == 3 else (6, 5, 4, 3)
    info = np.iinfo(dt) if dt[0] in 'iu' else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dt)
    else:
        arr = (rng.standard_normal(shape) * 1000).astype(dt)
    cls = nib.Nifti1Image if ver == 1 else nib.Nifti2Image
    hdr = (nib.Nifti1Header if ver == 1 else nib.Nifti2Header)(endianness=endian)
    img = cls(arr, oblique, header=hdr)
    img.set_data_dtype(dt)
    img.set_qform(oblique, code=1)
    img.set_sform(oblique, code=1)
    name = f'nib-{dt}-{"le" if endian == "<" else "be"}-v{ver}-{nd}d.nii' + ('.gz' if ver == 1 else '')
    img.to_filename(os.path.join(root, 'theirs', name))
    back = nib.load(os.path.join(root, 'theirs', name))
    out['theirs'][name] = {
        'shape': list(shape),
        'dtype': np.dtype(dt).name,
        'endianness': back.header.endianness,
        'affine': back.affine.tolist(),
        'data': arr.flatten(order='F').astype(np.float64).tolist(),
    }

# nibabel chooses scl_slope/scl_inter itself when float data goes to int16
vals = (np.arange(120, dtype=np.float64).reshape(6, 5, 4, order='F') * 0.37 - 7.5)
img = nib.Nifti1Image(vals, oblique)
img.set_data_dtype(np.int16)
img.to_filename(os.path.join(root, 'theirs', 'nib-scaled.nii'))
back = nib.load(os.path.join(root, 'theirs', 'nib-scaled.nii'))
out['theirs']['nib-scaled.nii'] = {
    'shape': [6, 5, 4],
    'dtype': 'int16',
    'endianness': back.header.endianness,
    'affine': back.affine.tolist(),
    'data': back.get_fdata().flatten(order='F').tolist(),
    'slope': float(back.dataobj.slope),
}
# qform only (sform_code 0), qfac -1
img = nib.Nifti1Image(np.arange(120, dtype=np.uint8).reshape(6, 5, 4), np.diag([1.5, 2, -3, 1.0]))
img.set_sform(None, code=0)
img.set_qform(np.array([[1.5, 0, 0, 4], [0, 2, 0, 5], [0, 0, -3, 6], [0, 0, 0, 1]]), code=1)
img.to_filename(os.path.join(root, 'theirs', 'nib-qform-only.nii.gz'))
back = nib.load(os.path.join(root, 'theirs', 'nib-qform-only.nii.gz'))
out['theirs']['nib-qform-only.nii.gz'] = {
    'shape': [6, 5, 4],
    'dtype': 'uint8',
    'endianness': back.header.endianness,
    'affine': back.affine.tolist(),
    'data': np.asanyarray(back.dataobj).flatten(order='F').astype(np.float64).tolist(),
    'codes': [int(back.header['qform_code']), int(back.header['sform_code'])],
    'qfac': float(back.header['pixdim'][0]),
}
# an .hdr/.img pair (magic ni1), big-endian int16
arr = np.arange(120, dtype='>i2').reshape(6, 5, 4) - 60
img = nib.Nifti1Pair(arr, oblique, header=nib.Nifti1Header(endianness='>'))
img.set_data_dtype('>i2')
img.to_filename(os.path.join(root, 'theirs', 'nib-pair.img'))
back = nib.load(os.path.join(root, 'theirs', 'nib-pair.hdr'))
out['theirs']['nib-pair.hdr'] = {
    'shape': [6, 5, 4],
    'dtype': 'int16',
    'endianness': back.header.endianness,
    'affine': back.affine.tolist(),
    'data': np.asanyarray(back.dataobj).flatten(order='F').astype(np.float64).tolist(),
}
print(json.dumps(out))
