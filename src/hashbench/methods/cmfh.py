"""CMFH: collective matrix factorization hashing (Ding, Guo & Zhou, CVPR 2014; unsupervised, as DJSRH's table
runs it), for image-text pairs.

On centred train features X_1 (images) and X_2 (texts), n x d_t, CMFH finds one latent code matrix Y (n x bits)
shared by both views, bases U_t and projections W_t minimising

    F = sum_t alpha_t (||X_t - Y U_t||^2 + mu ||Y - X_t W_t||^2 + gamma (||U_t||^2 + ||W_t||^2)) + gamma ||Y||^2

(alpha_1 = alpha, alpha_2 = 1 - alpha), by exact block updates in the order of the authors' code (the TKDE
version's CMFH_learn, as BMC-SDNU/Cross-Modal-Hashing-Retrieval ships it): U_t = (Y^T Y + gamma I)^-1 Y^T X_t;
Y = [sum_t alpha_t X_t (U_t^T + mu W_t)] [sum_t alpha_t U_t U_t^T + (mu + gamma) I]^-1;
W_t = (mu X_t^T X_t + gamma I)^-1 mu X_t^T Y. Each update minimises F over its block, so F never increases.
Y, U_t and W_t start uniform in [0, 1) from the method's seed; ``iterations`` updates (25, as that code). The hash
functions are sign(W_t^T (x - mean_t)), 0 -> +1; the train loss per iteration is F / n.

Inputs: images as pixels (/255) or a pretrained backbone's features, texts as the raw bag of words.

Deviation: alpha = 0.5 and gamma = 0.01 are the authors' demo settings; mu (their 100) was chosen among 100, 1 and
0.01 on a validation split carved from the train pairs of mnist5k-tags (README, baselines section): with 2,000
train pairs of 3,136 pixels, mu = 100 makes the ridge on W_t (gamma / mu) vanish and X_1 W_1 interpolates the
train codes, which do not carry over to unseen images.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ..config import Param
from .cvh import CROSS_MODAL_PRESET
from .shallow import FEATURE_SCHEMA, LinearHashing


class CMFH(LinearHashing):
    name = "cmfh"
    needs = frozenset({"text"})
    modalities = ("image", "text")
    preset = CROSS_MODAL_PRESET
    schema = {**FEATURE_SCHEMA, "alpha": Param(0.5, float, gt=0, le=1), "mu": Param(0.01, float, gt=0),
              "gamma": Param(0.01, float, gt=0), "iterations": Param(25, int, ge=1)}

    def fit(self, train):
        p = self.params
        f = self.train_inputs(train)
        means = [f[m].mean(0, dtype=np.float64) for m in self.modalities]
        xs = [f[m] - mean for m, mean in zip(self.modalities, means)]
        _, _, ws, objective = factorize(xs, self.bits, (p["alpha"], 1.0 - p["alpha"]), p["mu"], p["gamma"],
                                        p["iterations"], np.random.default_rng(self.seed))
        for m, mean, w in zip(self.modalities, means, ws):
            self.set_projection(m, mean, w)
        return [{"epoch": i, "loss": value / len(xs[0])} for i, value in enumerate(objective)]


def factorize(xs, bits, alphas, mu, gamma, iterations, rng):
    """CMFH's block updates on centred views xs (each n x d_t, float64): (Y, [U_t], [W_t], F after each iteration).
    Starts uniform in [0, 1) from `rng`, as the authors' code."""
    eye = np.eye(bits)
    y = rng.random((len(xs[0]), bits))
    us = [rng.random((bits, x.shape[1])) for x in xs]
    ws = [rng.random((x.shape[1], bits)) for x in xs]
    factors = [scipy.linalg.cho_factor(mu * x.T @ x + gamma * np.eye(x.shape[1])) for x in xs]
    objective = []
    for _ in range(iterations):
        us = [np.linalg.solve(y.T @ y + gamma * eye, y.T @ x) for x in xs]
        gram = sum(a * u @ u.T for a, u in zip(alphas, us)) + (mu + gamma) * eye
        y = np.linalg.solve(gram, sum(a * x @ (u.T + mu * w) for a, x, u, w in zip(alphas, xs, us, ws)).T).T
        ws = [mu * scipy.linalg.cho_solve(c, x.T @ y) for c, x in zip(factors, xs)]
        objective.append(cmfh_objective(xs, y, us, ws, alphas, mu, gamma))
    return y, us, ws, objective


def cmfh_objective(xs, y, us, ws, alphas, mu, gamma) -> float:
    """F of the module docstring."""
    total = gamma * np.sum(y ** 2)
    for a, x, u, w in zip(alphas, xs, us, ws):
        total += a * (np.sum((x - y @ u) ** 2) + mu * np.sum((y - x @ w) ** 2) + gamma * (np.sum(u ** 2) + np.sum(w ** 2)))
    return float(total)
