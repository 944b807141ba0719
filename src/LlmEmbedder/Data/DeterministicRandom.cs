namespace LlmEmbedder.Data;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood 2014; the generator behind java.util.SplittableRandom): a 64-bit
/// state advanced by the golden-ratio increment and passed through a bijective mixer. We own the
/// algorithm so that the same seed gives the same data order on every platform and .NET version,
/// which System.Random does not promise. Integer-only arithmetic keeps it bit-exact everywhere.
/// </summary>
public sealed class DeterministicRandom
{
    private const ulong GoldenGamma = 0x9E3779B97F4A7C15UL;

    /// <summary>The whole generator state; assigning it restores a saved position of the sequence.</summary>
    public ulong State { get; set; }

    public DeterministicRandom(ulong state) => State = state;

    /// <summary>
    /// A generator for one independent stream, named by a seed and a path of integers (epoch, dataset,
    /// line, ...). Deriving streams instead of sharing one generator makes each result a pure function of
    /// its coordinates, so parallel work, skipped rows or a resumed run cannot shift anything else.
    /// </summary>
    public static DeterministicRandom ForStream(long seed, params ReadOnlySpan<long> path)
    {
        var state = Mix((ulong)seed ^ 0x6A09E667F3BCC908UL);
        foreach (var part in path)
            state = Mix(state + GoldenGamma + Mix((ulong)part + GoldenGamma));
        return new DeterministicRandom(state);
    }

    public ulong NextUInt64()
    {
        State += GoldenGamma;
        return Mix(State);
    }

    /// <summary>Uniform integer in [0, bound) without modulo bias (Lemire's multiply-and-reject).</summary>
    public int NextInt(int bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        var range = (ulong)bound;
        var product = (NextUInt64() >> 32) * range;
        var low = (uint)product;
        if (low < range)
        {
            var threshold = (uint)((0x1_0000_0000UL - range) % range);
            while (low < threshold)
            {
                product = (NextUInt64() >> 32) * range;
                low = (uint)product;
            }
        }
        return (int)(product >> 32);
    }

    /// <summary>Uniform integer in [0, bound) for bounds beyond int (sums of dataset sizes).</summary>
    public long NextLong(long bound)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bound);
        var range = (ulong)bound;
        var limit = ulong.MaxValue - ulong.MaxValue % range;
        ulong draw;
        do draw = NextUInt64(); while (draw >= limit);
        return (long)(draw % range);
    }

    /// <summary>Fisher–Yates shuffle in place.</summary>
    public void Shuffle<T>(Span<T> items)
    {
        for (var i = items.Length - 1; i > 0; i--)
        {
            var j = NextInt(i + 1);
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    /// <summary>
    /// <paramref name="count"/> distinct integers of [0, <paramref name="population"/>) in the order drawn:
    /// the first steps of a Fisher–Yates shuffle over a virtual array, so the cost is O(count) even when
    /// the population is a dataset of millions.
    /// </summary>
    public int[] SampleWithoutReplacement(int population, int count)
    {
        if (count < 0 || count > population)
            throw new ArgumentOutOfRangeException(nameof(count), $"cannot draw {count} of {population} without replacement");
        var displaced = new Dictionary<int, int>();
        var drawn = new int[count];
        for (var i = 0; i < count; i++)
        {
            var j = i + NextInt(population - i);
            var atJ = displaced.GetValueOrDefault(j, j);
            displaced[j] = displaced.GetValueOrDefault(i, i);
            drawn[i] = atJ;
        }
        return drawn;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
