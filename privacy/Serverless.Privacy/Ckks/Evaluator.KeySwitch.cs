namespace Serverless.Privacy.Ckks;

public sealed partial class Evaluator
{
    /// <summary>Turns a size-3 product back into a size-2 ciphertext with the relinearization key.</summary>
    public void Relinearize(Ciphertext a, Ciphertext destination)
    {
        const string op = "Relinearize";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        if (_relinKey is null) ThrowMissingKey(op, "relinearization key");
        if (a.Size == 2)
        {
            a.CopyTo(destination);
            return;
        }
        if (a.Size != 3) throw new ArgumentException($"cannot {op}: size {a.Size} ciphertexts are not supported");
        var n = _context.N;
        var level = a.Level;
        var words = (level + 1) * n;
        var out0 = ScratchPool.Rent(words);
        var out1 = ScratchPool.Rent(words);
        try
        {
            KeySwitch(a.Poly(2), level, _relinKey!.Key, out0, out1);
            var scale = a.Scale;
            if (!ReferenceEquals(a, destination))
            {
                destination.Reshape(2, level);
                a.Poly(0).CopyTo(destination.Poly(0));
                a.Poly(1).CopyTo(destination.Poly(1));
            }
            else destination.Reshape(2, level);
            CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                var q = _context.Moduli[i].Value;
                LimbOps.Add(destination.Limb(0, i), out0.AsSpan(i * n, n), destination.Limb(0, i), q);
                LimbOps.Add(destination.Limb(1, i), out1.AsSpan(i * n, n), destination.Limb(1, i), q);
            });
            destination.Scale = scale;
        }
        finally
        {
            ScratchPool.Return(out0);
            ScratchPool.Return(out1);
        }
    }

    public void RelinearizeInPlace(Ciphertext a) => Relinearize(a, a);

    /// <summary>
    /// Rotates the slots left by <paramref name="step"/> (right when negative). Uses the key for
    /// that exact step if present, otherwise composes power-of-two rotations (non-adjacent form,
    /// then plain binary in either direction) from the keys available.
    /// </summary>
    /// <exception cref="InvalidOperationException">No combination of the available keys gives this step.</exception>
    public void Rotate(Ciphertext a, int step, Ciphertext destination)
    {
        const string op = "Rotate";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        if (_galoisKeys is null) ThrowMissingKey(op, "Galois keys");
        var slots = _context.Slots;
        var k = ((step % slots) + slots) % slots;
        if (k == 0)
        {
            a.CopyTo(destination);
            return;
        }
        var plan = PlanRotation(k) ?? throw new InvalidOperationException(
            $"cannot Rotate by {step}: no Galois key for that step, nor for the power-of-two steps it decomposes into; " +
            $"create keys with KeyGenerator.CreateGaloisKeys(new[] {{ {step} }}) or CreateGaloisKeys() for all powers of two");
        var source = a;
        foreach (var s in plan)
        {
            ApplyGalois(source, _context.GaloisElementForStep(s), destination, op);
            source = destination;
        }
    }

    public void RotateInPlace(Ciphertext a, int step) => Rotate(a, step, a);

    /// <summary>Complex conjugation of every slot (needs the conjugation key).</summary>
    public void Conjugate(Ciphertext a, Ciphertext destination)
    {
        const string op = "Conjugate";
        CheckOperand(a, nameof(a), op);
        CheckDestination(destination, op);
        if (_galoisKeys is null) ThrowMissingKey(op, "Galois keys");
        if (!_galoisKeys!.HasConjugation)
            throw new InvalidOperationException("cannot Conjugate: no conjugation key; create Galois keys with includeConjugation: true");
        ApplyGalois(a, _context.ConjugationGaloisElement, destination, op);
    }

    public void ConjugateInPlace(Ciphertext a) => Conjugate(a, a);

    /// <summary>Steps (each with a key) whose composition is a left rotation by k (0 &lt; k &lt; slots), or null.</summary>
    internal List<int>? PlanRotation(int k)
    {
        var slots = _context.Slots;
        if (_galoisKeys!.HasStep(k)) return [k];
        // Candidates: NAF of k, NAF of k − slots, binary of k (left), binary of slots − k (right).
        var candidates = new List<List<int>> { Naf(k), Naf(k - slots), Binary(k, 1), Binary(slots - k, -1) };
        candidates.Sort((x, y) => x.Count.CompareTo(y.Count));
        foreach (var plan in candidates)
        {
            var ok = true;
            foreach (var s in plan)
                if (!_galoisKeys.HasStep(s)) { ok = false; break; }
            if (ok) return plan;
        }
        return null;
    }

    private static List<int> Naf(int k)
    {
        var result = new List<int>();
        var sign = Math.Sign(k);
        long x = Math.Abs((long)k);
        var bit = 0;
        while (x != 0)
        {
            if ((x & 1) != 0)
            {
                var digit = 2 - (int)(x & 3); // +1 if x ≡ 1 mod 4, −1 if x ≡ 3 mod 4
                result.Add(sign * digit * (1 << bit));
                x -= digit;
            }
            x >>= 1;
            bit++;
        }
        return result;
    }

    private static List<int> Binary(int k, int sign)
    {
        var result = new List<int>();
        for (var bit = 0; k >> bit != 0; bit++)
            if (((k >> bit) & 1) != 0) result.Add(sign * (1 << bit));
        return result;
    }

    private void ApplyGalois(Ciphertext a, ulong galois, Ciphertext destination, string op)
    {
        if (a.Size != 2) throw new ArgumentException($"cannot {op}: the ciphertext has size {a.Size}; call Relinearize first");
        if (!_galoisKeys!.Keys.TryGetValue(galois, out var key))
            throw new InvalidOperationException($"cannot {op}: no Galois key for element {galois}");
        var n = _context.N;
        var level = a.Level;
        var words = (level + 1) * n;
        var perm = _context.GaloisPermutation(galois);
        var c0 = ScratchPool.Rent(words);
        var c1 = ScratchPool.Rent(words);
        var out0 = ScratchPool.Rent(words);
        var out1 = ScratchPool.Rent(words);
        try
        {
            CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                LimbOps.Permute(a.Limb(0, i), perm, c0.AsSpan(i * n, n));
                LimbOps.Permute(a.Limb(1, i), perm, c1.AsSpan(i * n, n));
            });
            KeySwitch(c1.AsSpan(0, words), level, key, out0, out1);
            var scale = a.Scale;
            destination.Reshape(2, level);
            CkksContext.ForLimbsLight(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                var q = _context.Moduli[i].Value;
                LimbOps.Add(c0.AsSpan(i * n, n), out0.AsSpan(i * n, n), destination.Limb(0, i), q);
                out1.AsSpan(i * n, n).CopyTo(destination.Limb(1, i));
            });
            destination.Scale = scale;
        }
        finally
        {
            ScratchPool.Return(c0);
            ScratchPool.Return(c1);
            ScratchPool.Return(out0);
            ScratchPool.Return(out1);
        }
    }

    /// <summary>
    /// Hybrid key switching of d (NTT form, limbs 0..level): decompose into digits [d]_{q_j},
    /// lift each to q_0..q_level and P, take the inner product with the key, and divide by P with
    /// rounding. Writes the two result polynomials (NTT form, limbs 0..level).
    /// </summary>
    internal void KeySwitch(ReadOnlySpan<ulong> d, int level, KeySwitchKey key, ulong[] out0, ulong[] out1)
    {
        var ctx = _context;
        var n = ctx.N;
        var digits = level + 1;
        var targets = level + 2; // q_0..q_level, then P
        var coeffs = ScratchPool.Rent(digits * n);
        var acc0 = ScratchPool.Rent(targets * n);
        var acc1 = ScratchPool.Rent(targets * n);
        try
        {
            d[..(digits * n)].CopyTo(coeffs);
            ctx.ForLimbs(digits, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (j) => ctx.Ntt[j].Inverse(coeffs.AsSpan(j * n, n)));
            var nttInput = coeffs; // captured; NTT-form digits are re-read from the original below
            var dCopy = ScratchPool.Rent(digits * n);
            try
            {
                d[..(digits * n)].CopyTo(dCopy);
                ctx.ForLimbs(targets, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (t) =>
                {
                    var mi = t <= level ? t : ctx.SpecialIndex;
                    var m = ctx.Moduli[mi];
                    var q = m.Value;
                    var a0 = acc0.AsSpan(t * n, n);
                    var a1 = acc1.AsSpan(t * n, n);
                    var temp = ScratchPool.Rent(n);
                    var lazy = ScratchPool.Rent(4 * n);
                    try
                    {
                        var lo0 = lazy.AsSpan(0, n);
                        var hi0 = lazy.AsSpan(n, n);
                        var lo1 = lazy.AsSpan(2 * n, n);
                        var hi1 = lazy.AsSpan(3 * n, n);
                        lazy.AsSpan(0, 4 * n).Clear();
                        var tmp = temp.AsSpan(0, n);
                        for (var j = 0; j < digits; j++)
                        {
                            ReadOnlySpan<ulong> x;
                            if (j == t) x = dCopy.AsSpan(j * n, n);
                            else
                            {
                                CenteredLift(nttInput.AsSpan(j * n, n), ctx.Moduli[j].Value, m, tmp);
                                ctx.Ntt[mi].Forward(tmp);
                                x = tmp;
                            }
                            // Products are below 2^122; at most 64 digits keep the sums below 2^128.
                            MultiplyAccumulate(x, key.B[j].AsSpan(mi * n, n), key.A[j].AsSpan(mi * n, n), lo0, hi0, lo1, hi1);
                        }
                        for (var k = 0; k < n; k++)
                        {
                            a0[k] = m.Reduce(hi0[k], lo0[k]);
                            a1[k] = m.Reduce(hi1[k], lo1[k]);
                        }
                    }
                    finally
                    {
                        ScratchPool.Return(temp);
                        ScratchPool.Return(lazy);
                    }
                });
            }
            finally { ScratchPool.Return(dCopy); }

            // Mod down by P: out_i = (acc_i − [acc_P]) · P^-1 mod q_i, with [acc_P] centered.
            var pIndex = level + 1;
            var special = ctx.Moduli[ctx.SpecialIndex];
            var p = special.Value;
            var halfP = p >> 1;
            ctx.ForLimbs(2, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (which) =>
                ctx.Ntt[ctx.SpecialIndex].Inverse((which == 0 ? acc0 : acc1).AsSpan(pIndex * n, n)));
            ctx.ForLimbs(level + 1, [MethodImpl(MethodImplOptions.AggressiveOptimization)] (i) =>
            {
                var m = ctx.Moduli[i];
                var q = m.Value;
                var pModQ = m.Reduce(p);
                var inv = ctx.PInvModQ[i];
                var invShoup = ctx.PInvModQShoup[i];
                var temp = ScratchPool.Rent(n);
                try
                {
                    var t = temp.AsSpan(0, n);
                    for (var which = 0; which < 2; which++)
                    {
                        var acc = which == 0 ? acc0 : acc1;
                        var output = which == 0 ? out0 : out1;
                        var last = acc.AsSpan(pIndex * n, n);
                        for (var k = 0; k < n; k++)
                        {
                            var v = last[k];
                            t[k] = v > halfP ? m.Sub(m.Reduce(v), pModQ) : m.Reduce(v);
                        }
                        ctx.Ntt[i].Forward(t);
                        var src = acc.AsSpan(i * n, n);
                        var dst = output.AsSpan(i * n, n);
                        for (var k = 0; k < n; k++) dst[k] = Modulus.MulShoup(src[k] + q - t[k], inv, invShoup, q);
                    }
                }
                finally { ScratchPool.Return(temp); }
            });
        }
        finally
        {
            ScratchPool.Return(coeffs);
            ScratchPool.Return(acc0);
            ScratchPool.Return(acc1);
        }
    }

    /// <summary>dst = the centered representative of src (residues mod q_j) reduced mod m: digits in (−q_j/2, q_j/2] halve the noise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void CenteredLift(ReadOnlySpan<ulong> src, ulong qj, Modulus m, Span<ulong> dst)
    {
        var q = m.Value;
        var halfQj = qj >> 1;
        var qjModQ = m.Reduce(qj);
        if (qj <= q)
        {
            // No reduction needed: v < q_j ≤ q.
            var offset = q - qjModQ; // adds −q_j mod q
            for (var k = 0; k < dst.Length; k++)
            {
                var v = src[k];
                if (v > halfQj)
                {
                    var r = v + offset;
                    dst[k] = Modulus.SubIfGe(r, q);
                }
                else dst[k] = v;
            }
        }
        else
        {
            for (var k = 0; k < dst.Length; k++)
            {
                var v = src[k];
                var r = m.Reduce(v);
                dst[k] = v > halfQj ? m.Sub(r, qjModQ) : r;
            }
        }
    }

    /// <summary>(hi0:lo0) += x·b and (hi1:lo1) += x·a, element-wise 128-bit accumulation.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyAccumulate(ReadOnlySpan<ulong> x, ReadOnlySpan<ulong> b, ReadOnlySpan<ulong> a, Span<ulong> lo0, Span<ulong> hi0, Span<ulong> lo1, Span<ulong> hi1)
    {
        for (var k = 0; k < x.Length; k++)
        {
            var xv = x[k];
            var h = Math.BigMul(xv, b[k], out var l);
            var s = lo0[k] + l;
            hi0[k] += h + (s < l ? 1UL : 0UL);
            lo0[k] = s;
            h = Math.BigMul(xv, a[k], out l);
            s = lo1[k] + l;
            hi1[k] += h + (s < l ? 1UL : 0UL);
            lo1[k] = s;
        }
    }
}
