# Generates wilcoxon-scipy.json: reference Wilcoxon signed-rank p-values from SciPy.
# Run: /usr/bin/python3 test/unit/metrics/wilcoxon-scipy.py > test/unit/metrics/wilcoxon-scipy.json
# SciPy 1.10 is installed; the "method" field says which of current SciPy's (>= 1.13) auto
# choices applies and the value is computed the way current SciPy does it (exact distribution,
# normal approximation, or stats.permutation_test over all 2^n sign flips).
import numpy as np, json, scipy
import warnings
warnings.simplefilter("ignore")
from scipy import stats
rng = np.random.default_rng(7)
def rplus(d):
    d = np.asarray(d, float); nz = d[d != 0]
    r = stats.rankdata(np.abs(nz)); return float(np.sum(r[nz > 0]))
def perm_p(d, alternative='two-sided'):
    d = np.asarray(d, float)
    def stat(x, axis=-1):
        x = np.moveaxis(np.asarray(x), axis, -1)
        out = []
        for row in x.reshape(-1, x.shape[-1]):
            out.append(rplus(row))
        return np.array(out).reshape(x.shape[:-1])
    res = stats.permutation_test((d,), stat, permutation_type='samples', alternative=alternative, n_resamples=9999, vectorized=True)
    return float(res.pvalue)
cases = []
def add(name, d, method, alternative='two-sided', correction=False, y=None):
    x = [float(v) for v in d]
    if method == 'permutation':
        dd = np.asarray(x) - (np.asarray(y) if y is not None else 0)
        p = perm_p(dd, alternative)
        r = stats.wilcoxon(dd, alternative=alternative, method='approx')  # statistic only
        stat = float(r.statistic) if alternative=='two-sided' else rplus(dd)
    else:
        r = stats.wilcoxon(x, y, alternative=alternative, method='exact' if method=='exact' else 'approx', correction=correction)
        p = float(r.pvalue); stat = float(r.statistic)
    c = dict(name=name, x=x, method=method, alternative=alternative, correction=correction, pvalue=p, statistic=stat)
    if y is not None: c['y'] = [float(v) for v in y]
    cases.append(c)
r3 = lambda a: np.round(a, 3)
add('n10 exact', r3(rng.normal(0.3, 1, 10)), 'exact')
add('n20 exact', r3(rng.normal(0.2, 1, 20)), 'exact')
add('n50 exact', r3(rng.normal(0.1, 1, 50)) + np.arange(50)*1e-6, 'exact')
add('n60 asymptotic', r3(rng.normal(0.3, 1, 60)) + np.arange(60)*1e-6, 'asymptotic')
add('n12 ties permutation', [1, -1, 2, 2, -3, 4, 5, 5, 5, -6, 7, 8], 'permutation')
add('n10 zeros permutation', [0, 0.5, -0.25, 1.5, 2, 0, 3, -4, 2.5, 1.25], 'permutation')
add('n30 ties asymptotic', np.round(rng.normal(0.5, 1, 30), 1), 'asymptotic')
add('n25 zeros+ties asymptotic', np.round(rng.normal(0.4, 1, 25), 1) * (rng.random(25) > 0.2), 'asymptotic')
add('n30 ties asymptotic corrected', cases[-2]['x'], 'asymptotic', correction=True)
add('n10 exact greater', cases[0]['x'], 'exact', alternative='greater')
add('n10 exact less', cases[0]['x'], 'exact', alternative='less')
add('n60 asymptotic less', cases[3]['x'], 'asymptotic', alternative='less')
xs = [0.91, 0.85, 0.78, 0.88, 0.93, 0.81, 0.87, 0.90]
ys = [0.89, 0.86, 0.74, 0.84, 0.92, 0.77, 0.85, 0.86]
add('n8 paired x,y', xs, 'permutation', y=ys)
# ensure method choice is as documented: check no ties where 'exact'
for c in cases:
    d = np.asarray(c['x']) - (np.asarray(c['y']) if 'y' in c else 0)
    a = np.abs(d[d!=0]); c['n']=len(d); c['zeros']=int(np.sum(d==0)); c['ties']=bool(len(np.unique(a))<len(a))
print(json.dumps(dict(scipy=scipy.__version__, numpy=np.__version__, cases=cases), indent=1))
