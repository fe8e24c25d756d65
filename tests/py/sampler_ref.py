"""Python reference of engine/cosyvoice2/sampler.c: PCG32 (integer-exact) and RAS sampling (docs/cosyvoice2.md §3.5).

Written from that section and the reference's ``nucleus_sampling`` / ``ras_sampling`` / ``random_sampling``
(HEAD), with torch.multinomial replaced by the documented inverse-CDF draw on a PCG32 uniform, so that
C and Python pick identical tokens. Uses only the standard library (math.exp is the same libm exp the C
code calls), in the same IEEE double operations and order as the C code.

    python3 tests/py/sampler_ref.py gen N SEED   # N random cases with expected picks (check_sampler.c)
    python3 tests/py/sampler_ref.py kat          # PCG32 known-answer values

Case format (one case = three lines, numbers in decimal or float.hex):
    C seed vocab eos_id mask_eos exclude greedy top_k top_p win tau n_dec d... n_steps
    L logit_0 ... logit_{vocab-1}
    E pick_1 ... pick_{n_steps} next_u32
Each step samples with the same logits and the decoded history so far, then appends the pick.
"""

import math
import random
import struct
import sys

MASK64 = (1 << 64) - 1
PCG_MULT = 6364136223846793005


class Pcg32:
    def __init__(self, seed: int, stream: int = 54):
        self.state = 0
        self.inc = ((stream << 1) | 1) & MASK64
        self.u32()
        self.state = (self.state + seed) & MASK64
        self.u32()

    def u32(self) -> int:
        old = self.state
        self.state = (old * PCG_MULT + self.inc) & MASK64
        xorshifted = (((old >> 18) ^ old) >> 27) & 0xFFFFFFFF
        rot = old >> 59
        return ((xorshifted >> rot) | (xorshifted << ((32 - rot) & 31))) & 0xFFFFFFFF

    def uniform(self) -> float:
        a = self.u32()
        b = self.u32()
        return float(((a << 32) | b) >> 11) * 2.0**-53


def multinomial(w, u):
    """Inverse CDF: first index whose running sum exceeds u*sum(w); zero weights never picked."""
    total = 0.0
    for x in w:
        total += x
    target = u * total
    run = 0.0
    last = 0
    for i, x in enumerate(w):
        if x > 0.0:
            last = i
        run += x
        if run > target:
            return i
    return last


def ras(logits, decoded, rng, top_p=0.8, top_k=25, win_size=10, tau_r=0.1, mask_eos=False, eos_id=6561,
        exclude_pick=True, greedy=False):
    """One step of §3.5 on float logits (python floats holding float32 values)."""
    vocab = len(logits)
    masked = eos_id if mask_eos else -1

    def allowed(i, excluded=-1):
        return i != masked and i != excluded and logits[i] != -math.inf

    cand = [i for i in range(vocab) if allowed(i)]
    assert cand, "no allowed entry"
    m = max(logits[i] for i in cand)
    if greedy:
        return min(i for i in cand if logits[i] == m)
    # softmax (log_softmax + EOS := -inf + softmax == softmax over the allowed entries)
    s = 0.0
    for i in cand:
        s += math.exp(logits[i] - m)
    probs = [(math.exp(logits[i] - m) / s, i) for i in cand]
    # torch: softmax(...).sort(descending=True, stable=True)
    order = sorted(probs, key=lambda t: (-t[0], t[1]))
    kept_p, kept_i = [], []
    cum = 0.0
    for p, i in order:
        if cum < top_p and len(kept_p) < top_k:
            cum += p
            kept_p.append(p)
            kept_i.append(i)
        else:
            break
    if not kept_p:
        kept_p, kept_i = [order[0][0]], [order[0][1]]
    pick = kept_i[multinomial(kept_p, rng.uniform())]
    rep = sum(1 for t in decoded[-win_size:] if t == pick) if decoded else 0
    if rep >= win_size * tau_r:
        excluded = pick if exclude_pick else -1
        rest = [i for i in range(vocab) if allowed(i, excluded)]
        if rest:
            mr = max(logits[i] for i in rest)
            w = [math.exp(logits[i] - mr) for i in rest]
            pick = rest[multinomial(w, rng.uniform())]
    return pick


def f32(x: float) -> float:
    return struct.unpack("<f", struct.pack("<f", x))[0]


def gen_case(r: random.Random):
    u = r.random()
    if u < 0.2:
        vocab = r.randint(1, 8)
    elif u < 0.7:
        vocab = r.randint(9, 100)
    elif u < 0.97:
        vocab = r.randint(101, 1000)
    else:
        vocab = 6564
    scale = r.choice([0.3, 1.0, 3.0, 8.0, 30.0])
    quant = r.random() < 0.15  # integer logits: many exact ties (stable-order test)
    logits = []
    for _ in range(vocab):
        x = r.gauss(0.0, scale)
        if quant:
            x = float(round(x / scale * 2))
        logits.append(f32(x))
    for _ in range(r.randint(0, 3) if r.random() < 0.2 else 0):
        logits[r.randrange(vocab)] = -math.inf
    eos_id = 6561 if vocab == 6564 else r.randrange(vocab)
    mask_eos = r.random() < 0.4
    if mask_eos and vocab > 1 and r.random() < 0.5:
        logits[eos_id] = f32(max(x for x in logits) + 5.0)  # EOS would dominate if not masked
    if not any(x != -math.inf and (not mask_eos or i != eos_id) for i, x in enumerate(logits)):
        logits[(eos_id + 1) % vocab if vocab > 1 else 0] = 0.0
        mask_eos = mask_eos and vocab > 1
    greedy = r.random() < 0.08
    exclude = r.random() < 0.8
    top_k = 25 if r.random() < 0.6 else r.randint(1, 40)
    top_p = 0.8 if r.random() < 0.6 else r.uniform(0.05, 1.0)
    win = 10 if r.random() < 0.7 else r.randint(1, 15)
    tau = 0.1 if r.random() < 0.7 else r.choice([0.05, 0.2, 0.3, 0.5])
    best = sorted(range(vocab), key=lambda i: -logits[i])[: max(1, min(vocab, 6))]
    n_dec = r.randint(0, 25)
    decoded = [r.choice(best) if r.random() < 0.7 else r.randrange(vocab) for _ in range(n_dec)]
    seed = r.getrandbits(64)
    n_steps = r.randint(1, 4)
    return dict(seed=seed, vocab=vocab, eos_id=eos_id, mask_eos=mask_eos, exclude=exclude, greedy=greedy,
                top_k=top_k, top_p=top_p, win=win, tau=tau, decoded=decoded, n_steps=n_steps, logits=logits)


def run_case(c):
    rng = Pcg32(c["seed"])
    dec = list(c["decoded"])
    picks = []
    for _ in range(c["n_steps"]):
        t = ras(c["logits"], dec, rng, top_p=c["top_p"], top_k=c["top_k"], win_size=c["win"], tau_r=c["tau"],
                mask_eos=c["mask_eos"], eos_id=c["eos_id"], exclude_pick=c["exclude"], greedy=c["greedy"])
        picks.append(t)
        dec.append(t)
    return picks, rng.u32()


def main(argv):
    if len(argv) >= 2 and argv[1] == "kat":
        g = Pcg32(42)
        print(" ".join("0x%08x" % g.u32() for _ in range(6)))
        return 0
    if len(argv) != 4 or argv[1] != "gen":
        print(__doc__, file=sys.stderr)
        return 2
    n, seed = int(argv[2]), int(argv[3])
    r = random.Random(seed)
    out = sys.stdout
    for _ in range(n):
        c = gen_case(r)
        picks, nxt = run_case(c)
        head = [c["seed"], c["vocab"], c["eos_id"], int(c["mask_eos"]), int(c["exclude"]), int(c["greedy"]),
                c["top_k"], c["top_p"].hex(), c["win"], c["tau"].hex(), len(c["decoded"])]
        head += c["decoded"] + [c["n_steps"]]
        out.write("C " + " ".join(str(x) for x in head) + "\n")
        out.write("L " + " ".join(x.hex() for x in c["logits"]) + "\n")
        out.write("E " + " ".join(str(x) for x in picks) + " " + str(nxt) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
