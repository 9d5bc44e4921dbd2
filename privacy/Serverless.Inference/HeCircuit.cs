using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Serverless.Inference;

/// <summary>
/// The encrypted forward pass of the HE-friendly CNN-LSTM over one ciphertext group (record-per-slot,
/// so every weight is a plaintext scalar and no rotation is needed).
/// Records arrive left-padded (a record's real visits occupy the last steps, padding values are zero),
/// which the plaintext model scores identically: its state stays zero through leading padding exactly as
/// it is carried through trailing padding. At a padded step the whole convolution window is padding, so
/// the gates there take known constant values κ, and the masked input term m_t·i_t·g_t equals
/// i_t·g_t − (1 − m_t)·i(κ)·g(κ): masking costs a subtraction, not a multiplication. The output gate is
/// read at the last step, always a real visit.
/// Because lstm.R = 0 the gates depend on the current visit only, and c_t = f_t·c_(t−1) + X_t (X_t the
/// masked i_t·g_t) is a linear recurrence: c = Σ_t (Π_(s>t) f_s)·X_t is evaluated as a balanced tree,
/// combining adjacent ranges (V, Π) as V = Π_R·V_L + V_R, Π = Π_L·Π_R: depth ⌈log2 T⌉ instead of T.
/// Depths below the top (a = 2 for a degree-2 convolution activation, 1 for Identity): conv z (1),
/// activation y (a), gate pre-activations p (a+1), sigmoid gates and tanh candidate (a+3; the candidate
/// at a+1 with an Identity cell activation), X (a+4), cell state (a+4+⌈log2 T⌉ for powers of two), head
/// (one more; two with the tanh output): <see cref="HeModel.LevelsRequired(ModelConfig)"/>.
/// Activation constants fold into the next linear layer (a = gain·y + c0 with y = z² + (c1/gain)·z),
/// odd cubics are (c3·p)·(p² + c1/c3), and the head folds the output weights into o:
/// logit = b + Σ_j (w_j·o_j)·c_j, or with tanh b + Σ_j (w_j·H3·o_j·c_j)·(c_j² + H1/H3), summed before
/// one relinearization (lazy relinearization).
/// </summary>
internal sealed class HeCircuit
{
    private readonly HeWeights _w;
    private readonly Evaluator _ev;
    private readonly CkksContext _ctx;
    private readonly ParallelOptions _parallel;
    private readonly Dictionary<string, double> _timings = [];
    private readonly System.Diagnostics.Stopwatch _clock = new();

    public HeCircuit(HeWeights weights, Evaluator evaluator, int maxDegreeOfParallelism, CancellationToken cancellationToken)
    {
        _w = weights;
        _ev = evaluator;
        _ctx = evaluator.Context;
        _parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, maxDegreeOfParallelism), CancellationToken = cancellationToken };
    }

    /// <summary>Wall milliseconds per stage of the last <see cref="Run"/> (for the benchmark's breakdown).</summary>
    public IReadOnlyDictionary<string, double> Timings => _timings;

    /// <summary>Inputs: [t·F + f] values, then [T·F + t] masks, all fresh at the top level. Returns the logits ciphertext.</summary>
    public Ciphertext Run(Ciphertext[] inputs)
    {
        var w = _w;
        int T = w.Steps, F = w.Features, C = w.Channels, K = w.Kernel, H = w.Hidden;
        Debug.Assert(inputs.Length == T * (F + 1));
        var top = _ctx.MaxLevel;
        var (c0, c1, c2) = (w.ConvPoly[0], w.ConvPoly[1], w.ConvPoly[2]);
        var needed = HeModel.LevelsRequired(T, c2 != 0, w.CellTanh);
        Debug.Assert(w.PaddingInputTerm.Length == H);
        if (top < needed)
            throw new InvalidOperationException($"cannot evaluate: the circuit needs {needed} levels, the inputs have {top}");
        _timings.Clear();

        // 1. Causal convolution (depth 1) and its activation y = z² + (c1/c2)·z (depth 2), a = gain·y + c0.
        Stage("conv");
        var gain = c2 != 0 ? c2 : c1;
        var y = new Ciphertext[T * C];
        For(T * C, u =>
        {
            int t = u / C, c = u % C;
            var xs = new List<Ciphertext>(F * K);
            var ws = new List<double>(F * K);
            for (var kk = 0; kk < K; kk++)
            {
                var src = t - (K - 1) + kk;
                if (src < 0) continue;
                for (var f = 0; f < F; f++)
                {
                    xs.Add(inputs[src * F + f]);
                    ws.Add(w.ConvWeight[(c * F + f) * K + kk]);
                }
            }
            var z = Linear(xs, ws, w.ConvBias[c]);
            if (c2 == 0)
            {
                y[u] = z;
                return;
            }
            var sq = MulRelinRescale(z, z);
            if (c1 != 0) _ev.AddInPlace(sq, MulScalarRescale(z, c1 / c2));
            y[u] = sq;
        });

        // 2. Gate pre-activations p = W·(gain·y + c0) + b (gates i, o, f, c), only those used:
        //    the output gate at the last step, the forget gate from the second step on.
        Stage("gate pre-activations");
        var p = new Ciphertext?[T * 4 * H];
        For(T * 4 * H, u =>
        {
            int t = u / (4 * H), j = u % (4 * H);
            var isOutput = j >= H && j < 2 * H;
            var isForget = j >= 2 * H && j < 3 * H;
            if ((isOutput && t != T - 1) || (isForget && t == 0)) return;
            var xs = new List<Ciphertext>(C);
            var ws = new List<double>(C);
            var bias = w.LstmB[j];
            for (var c = 0; c < C; c++)
            {
                var wt = w.LstmW[j * C + c];
                xs.Add(y[t * C + c]);
                ws.Add(wt * gain);
                bias += wt * c0;
            }
            p[u] = Linear(xs, ws, bias);
        });
        Array.Clear(y);

        // 3. Per (t, j): X_t = i_t·g_t − (1 − m_t)·i(κ)·g(κ) (the masked input term), f_t for t ≥ 1.
        //    The forget gates usually have a level of slack in the tree: evaluated one level lower, their
        //    products key-switch over fewer primes, and the tree's depth (hence the plan) is unchanged.
        Stage("gates");
        var xDepth = (c2 != 0 ? 2 : 1) + 4;
        var forgetShift = HeCircuit.CellTreeDepth(0, T, xDepth, xDepth).Value == HeCircuit.CellTreeDepth(0, T, xDepth, xDepth - 1).Value ? 1 : 0;
        var inputTerm = new Ciphertext[T * H];
        var forget = new Ciphertext[T * H];
        For(T * H, u =>
        {
            int t = u / H, j = u % H;
            var i = Sigmoid(p[t * 4 * H + j]!);
            var g = w.CellTanh ? Tanh(p[t * 4 * H + 3 * H + j]!) : p[t * 4 * H + 3 * H + j]!;
            var x = MulRelinRescale(i, g);
            if (t < T - 1) // the last step is always a real visit
            {
                var oneMinusM = inputs[T * F + t].Clone();
                _ev.NegateInPlace(oneMinusM);
                _ev.AddScalarInPlace(oneMinusM, 1.0);
                _ev.SubInPlace(x, MulScalarTo(oneMinusM, w.PaddingInputTerm[j], x.Level));
            }
            inputTerm[u] = x;
            if (t > 0)
            {
                var pf = p[t * 4 * H + 2 * H + j]!;
                forget[u] = Sigmoid(DownTo(pf, pf.Level - forgetShift));
            }
        });

        // 4. Output gate at the last step.
        Stage("output gate");
        var outGate = new Ciphertext[H];
        For(H, j => outGate[j] = Sigmoid(p[(T - 1) * 4 * H + H + j]!));
        Array.Clear(p);

        // 5. Cell state c = Σ_t (Π_(s>t) f_s)·X_t by a balanced tree over the steps.
        Stage("cell tree");
        var cell = new Ciphertext[H];
        For(H, j => cell[j] = CellTree(inputTerm, forget, H, j, 0, T).Value);

        // 6. Head: logit = b + Σ_j (w_j·o_j)·h(c_j) with h = identity or tanh ≈ H3·c·(c² + H1/H3).
        Stage("head");
        var cellLevel = cell[0].Level;
        var terms = new Ciphertext[H];
        For(H, j =>
        {
            var term = new Ciphertext(_ctx);
            if (w.CellTanh)
            {
                var u = MulScalarRescale(outGate[j], w.OutW[j] * HeWeights.H3);
                var v = MulRelinRescale(DownTo(u, cellLevel), cell[j]);
                var d = MulRelinRescale(cell[j], cell[j]);
                _ev.AddScalarInPlace(d, HeWeights.H1 / HeWeights.H3);
                _ev.Multiply(v, d, term);
            }
            else
            {
                var u = MulScalarRescale(outGate[j], w.OutW[j]);
                _ev.Multiply(DownTo(u, cellLevel), cell[j], term);
            }
            terms[j] = term;
        });
        var logit = terms[0];
        for (var j = 1; j < H; j++) _ev.AddInPlace(logit, terms[j]);
        _ev.RelinearizeInPlace(logit);
        _ev.RescaleInPlace(logit);
        _ev.AddScalarInPlace(logit, w.OutB);
        Stage(null);
        Debug.Assert(logit.Level == top - needed, $"logit at level {logit.Level}, the plan says {top - needed}");
        return logit;
    }

    /// <summary>(V, Π) of steps [lo, hi): V = Σ_(lo≤t<hi) (Π_(t<s<hi) f_s)·X_t, Π = Π_(lo≤s<hi) f_s (not needed, so not computed, when lo = 0).</summary>
    private (Ciphertext Value, Ciphertext? Product) CellTree(Ciphertext[] x, Ciphertext[] f, int h, int j, int lo, int hi)
    {
        if (hi - lo == 1) return (x[lo * h + j], lo == 0 ? null : f[lo * h + j]);
        var mid = (lo + hi) / 2;
        var (vl, pl) = CellTree(x, f, h, j, lo, mid);
        var (vr, pr) = CellTree(x, f, h, j, mid, hi);
        var v = MulRelinRescale(pr!, vl);
        _ev.AddInPlace(v, DownTo(vr, v.Level));
        return (v, pl is null ? null : MulRelinRescale(pl, pr!));
    }

    /// <summary>(depth of V, depth of Π) of <see cref="CellTree"/> over [lo, hi), given the depths of X and f.</summary>
    internal static (int Value, int Product) CellTreeDepth(int lo, int hi, int xDepth, int fDepth)
    {
        if (hi - lo == 1) return (xDepth, fDepth);
        var mid = (lo + hi) / 2;
        var (vl, pl) = CellTreeDepth(lo, mid, xDepth, fDepth);
        var (vr, pr) = CellTreeDepth(mid, hi, xDepth, fDepth);
        return (Math.Max(Math.Max(pr, vl) + 1, vr), Math.Max(pl, pr) + 1);
    }

    /// <summary>value·a, landing at <paramref name="level"/> at the standard scale (a is higher up).</summary>
    private Ciphertext MulScalarTo(Ciphertext a, double value, int level)
    {
        var r = MulScalarRescale(DownTo(a, level + 1), value);
        return r;
    }

    private string? _stage;

    private void Stage(string? name)
    {
        if (_stage is not null) _timings[_stage] = _clock.Elapsed.TotalMilliseconds;
        _stage = name;
        _clock.Restart();
    }

    /// <summary>σ(p) ≈ S0 + (S3·p)·(p² + S1/S3): two levels.</summary>
    private Ciphertext Sigmoid(Ciphertext p)
    {
        var r = OddCubic(p, HeWeights.S1, HeWeights.S3);
        _ev.AddScalarInPlace(r, HeWeights.S0);
        return r;
    }

    /// <summary>tanh(p) ≈ (H3·p)·(p² + H1/H3): two levels.</summary>
    private Ciphertext Tanh(Ciphertext p) => OddCubic(p, HeWeights.H1, HeWeights.H3);

    private Ciphertext OddCubic(Ciphertext p, double k1, double k3)
    {
        var sq = MulRelinRescale(p, p);
        _ev.AddScalarInPlace(sq, k1 / k3);
        return MulRelinRescale(MulScalarRescale(p, k3), sq);
    }

    private void For(int count, Action<int> body) => Parallel.For(0, count, _parallel, body);

    private Ciphertext MulRelinRescale(Ciphertext a, Ciphertext b)
    {
        var r = new Ciphertext(_ctx);
        if (a.Level != b.Level)
        {
            var level = Math.Min(a.Level, b.Level);
            a = DownTo(a, level);
            b = DownTo(b, level);
        }
        _ev.MultiplyRelinearizeRescale(a, b, r);
        return r;
    }

    private Ciphertext MulScalarRescale(Ciphertext a, double value)
    {
        var r = new Ciphertext(_ctx);
        _ev.MultiplyScalar(a, value, r);
        _ev.RescaleInPlace(r);
        return r;
    }

    /// <summary>The ciphertext at <paramref name="level"/> (itself when already there).</summary>
    private Ciphertext DownTo(Ciphertext a, int level)
    {
        if (a.Level == level) return a;
        var r = new Ciphertext(_ctx);
        _ev.ModSwitchTo(a, level, r);
        return r;
    }

    /// <summary>Σ_j w_j·x_j + bias, one level down at the standard scale (the evaluator's fused linear combination).</summary>
    private Ciphertext Linear(List<Ciphertext> xs, List<double> ws, double bias)
    {
        var r = new Ciphertext(_ctx);
        _ev.LinearCombination(xs, CollectionsMarshal.AsSpan(ws), bias, r);
        return r;
    }
}
