"""CVH: cross-view hashing (Kumar & Udupa, IJCAI 2011), unsupervised, for image-text pairs.

CVH learns one linear hash function per view, y = sign(A^T x), so that the two views of an item get close codes:
it minimises sum_i ||A^T x_i - B^T t_i||^2 over the train pairs (similarity W = identity between the views of the
same item, no labels), with the bits uncorrelated and balanced: A^T C_xx A + B^T C_tt B = I on centred data. The
relaxed problem is the generalised eigenproblem [[0, C_xt], [C_tx, 0]] w = lambda [[C_xx, 0], [0, C_tt]] w with
w = [a; b], of which the `bits` largest eigenvalues are kept (for two views and W = I, CVH is CCA). It is solved
through the equivalent SVD of L_x^-1 C_xt L_t^-T (L the Cholesky factors of the ridge-regularised covariances
C + reg I): a = L_x^-T u, b = L_t^-T v, lambda = sigma. Codes: sign of the centred features times A (images) or B
(texts), 0 -> +1. Deterministic: the seed changes nothing. At most min(image dim, text dim) bits.

Inputs: images as pixels (/255) or a pretrained backbone's features (DJSRH's table runs CVH on fc7 features), texts
as the raw bag of words. The train loss reported is 1 - mean of the kept canonical correlations.

Deviation: the paper does not give a regulariser; ``reg`` (added to the covariances, which are divided by the
number of items) was chosen among 1e-4, 1e-3, 1e-2, 1e-1 and 1 on a validation split carved from the train pairs
of mnist5k-tags (see the README's baselines section); the public re-implementation in
BMC-SDNU/Cross-Modal-Hashing-Retrieval adds 1e-4 to the unnormalised X^T X.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ..config import Param
from ..errors import HashbenchError
from .shallow import FEATURE_SCHEMA, LinearHashing

CROSS_MODAL_PRESET = {"topk": 50, "zero": "count", "directions": ["i2t", "t2i", "i2i"]}  # DJSRH's table protocol


def ridge_cholesky(x: np.ndarray, reg: float) -> np.ndarray:
    """Lower Cholesky factor of x^T x / n + reg I (x centred, float64)."""
    return np.linalg.cholesky(x.T @ x / len(x) + reg * np.eye(x.shape[1]))


class CVH(LinearHashing):
    name = "cvh"
    needs = frozenset({"text"})
    modalities = ("image", "text")
    preset = CROSS_MODAL_PRESET
    schema = {**FEATURE_SCHEMA, "reg": Param(0.001, float, gt=0)}

    def fit(self, train):
        f = self.train_inputs(train)
        means = {m: f[m].mean(0, dtype=np.float64) for m in self.modalities}
        x, t = (f[m] - means[m] for m in self.modalities)
        if self.bits > min(x.shape[1], t.shape[1]):
            raise HashbenchError(f"bits: {self.bits} is not allowed for cvh with {x.shape[1]}-d image and "
                                 f"{t.shape[1]}-d text features; use at most {min(x.shape[1], t.shape[1])}")
        lx, lt = ridge_cholesky(x, self.params["reg"]), ridge_cholesky(t, self.params["reg"])
        cxt = x.T @ t / len(x)
        solve = scipy.linalg.solve_triangular
        whitened = solve(lx, solve(lt, cxt.T, lower=True).T, lower=True)  # L_x^-1 C_xt L_t^-T
        u, sigma, vt = np.linalg.svd(whitened, full_matrices=False)
        self.set_projection("image", means["image"], solve(lx.T, u[:, :self.bits], lower=False))
        self.set_projection("text", means["text"], solve(lt.T, vt[:self.bits].T, lower=False))
        return [{"epoch": 0, "loss": float(1.0 - sigma[:self.bits].mean())}]
