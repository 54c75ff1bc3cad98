"""Reference numbers for the Multi-VAE and LightGCN unit tests (src/model/baselines/tests.rs),
computed in float64 with numpy, independently of the Rust code: the forward passes and losses
written from the papers' definitions, gradients by central finite differences.

    python3 tests/reference/baselines_reference.py
"""
import numpy as np


def fill(shape, c):
    """The fixed weights of the tests: 0.5 sin(0.37 k + c) for the k-th value (row-major)."""
    n = int(np.prod(shape))
    return 0.5 * np.sin(0.37 * np.arange(n) + c).reshape(shape)


def numgrad(f, x, h=1e-6):
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        a = f()
        x[i] = old - h
        b = f()
        x[i] = old
        g[i] = (a - b) / (2 * h)
    return g


def log_softmax(z):
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def multivae():
    items, hidden, latent = 5, 3, 2
    users = [[0, 2, 3], [1, 4]]
    p = {
        "enc_w1": fill((items, hidden), 0.1),
        "enc_b1": fill((hidden,), 0.2),
        "enc_w2": fill((hidden, 2 * latent), 0.3),
        "enc_b2": fill((2 * latent,), 0.4),
        "dec_w1": fill((latent, hidden), 0.5),
        "dec_b1": fill((hidden,), 0.6),
        "dec_w2": fill((hidden, items), 0.7),
        "dec_b2": fill((items,), 0.8),
    }
    eps = np.array([[0.3, -0.5], [1.2, 0.1]])
    beta = 0.3
    x = np.zeros((2, items))
    for r, its in enumerate(users):
        x[r, its] = 1.0
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)

    def parts():
        h = np.tanh(xn @ p["enc_w1"] + p["enc_b1"])
        out = h @ p["enc_w2"] + p["enc_b2"]
        mu, logvar = out[:, :latent], out[:, latent:]
        z = mu + eps * np.exp(0.5 * logvar)
        logits = np.tanh(z @ p["dec_w1"] + p["dec_b1"]) @ p["dec_w2"] + p["dec_b2"]
        nll = -(log_softmax(logits) * x).sum(axis=1).mean()
        kl = (0.5 * (-logvar + np.exp(logvar) + mu**2 - 1)).sum(axis=1).mean()
        scores = np.tanh(mu @ p["dec_w1"] + p["dec_b1"]) @ p["dec_w2"] + p["dec_b2"]
        return nll, kl, scores

    def loss():
        nll, kl, _ = parts()
        return nll + beta * kl

    nll, kl, scores = parts()
    print("multivae nll", repr(nll), "kl", repr(kl), "loss", repr(nll + beta * kl))
    print("multivae scores", repr(scores.ravel().tolist()))
    for name in ["enc_w1", "dec_b2", "enc_b2"]:
        print("multivae grad", name, repr(numgrad(loss, p[name]).ravel().tolist()))


def lightgcn():
    n_users, n_items, dim, layers, l2 = 3, 4, 2, 3, 0.1
    train = [[0, 1], [1, 2, 3], [0]]
    a = np.zeros((n_users + n_items, n_users + n_items))
    deg_i = np.zeros(n_items)
    for its in train:
        for i in its:
            deg_i[i] += 1
    for u, its in enumerate(train):
        for i in its:
            w = 1.0 / np.sqrt(len(its) * deg_i[i])
            a[u, n_users + i] = w
            a[n_users + i, u] = w
    ego = fill((n_users + n_items, dim), 0.9)
    triples = [(0, 1, 2), (1, 3, 0), (2, 0, 3)]

    def final():
        e, s = ego, ego.copy()
        for _ in range(layers):
            e = a @ e
            s = s + e
        return s / (layers + 1)

    def parts():
        f = final()
        bpr, reg = 0.0, 0.0
        for u, i, j in triples:
            pi, pj = f[u] @ f[n_users + i], f[u] @ f[n_users + j]
            bpr += np.log1p(np.exp(pj - pi))
            reg += 0.5 * (ego[u] @ ego[u] + ego[n_users + i] @ ego[n_users + i]
                          + ego[n_users + j] @ ego[n_users + j])
        return bpr / len(triples), reg / len(triples)

    def loss():
        bpr, reg = parts()
        return bpr + l2 * reg

    bpr, reg = parts()
    print("lightgcn final", repr(final().ravel().tolist()))
    print("lightgcn bpr", repr(bpr), "reg", repr(reg), "loss", repr(bpr + l2 * reg))
    print("lightgcn grad ego", repr(numgrad(loss, ego).ravel().tolist()))


multivae()
lightgcn()
