using LlmEmbedder.Data;

namespace LlmEmbedder.Tests.Data;

public sealed class DeterministicRandomTests
{
    /// <summary>
    /// java.util.SplittableRandom(seed).nextLong() is SplitMix64 too; these values came from
    /// `new java.util.SplittableRandom(s).nextLong()` (OpenJDK) and equal Vigna's splitmix64.c for seed 0.
    /// </summary>
    [Theory]
    [InlineData(0L, new[] { 0xE220A8397B1DCDAFUL, 0x6E789E6AA1B965F4UL, 0x06C45D188009454FUL, 0xF88BB8A8724C81ECUL })]
    [InlineData(42L, new[] { 0xBDD732262FEB6E95UL, 0x28EFE333B266F103UL, 0x47526757130F9F52UL, 0x581CE1FF0E4AE394UL })]
    public void CompareToJavaSplittableRandom(long seed, ulong[] expected)
    {
        var random = new DeterministicRandom((ulong)seed);
        Assert.Equal(expected, expected.Select(_ => random.NextUInt64()).ToArray());
    }

    [Fact]
    public void RestoringTheStateRepeatsTheSequence()
    {
        var random = DeterministicRandom.ForStream(7, 1, 2);
        random.NextUInt64();
        var saved = random.State;
        var first = Enumerable.Range(0, 5).Select(_ => random.NextInt(1000)).ToArray();
        random.State = saved;
        Assert.Equal(first, Enumerable.Range(0, 5).Select(_ => random.NextInt(1000)).ToArray());
    }

    [Fact]
    public void StreamsDependOnEveryCoordinate()
    {
        ulong First(long seed, params long[] path) => DeterministicRandom.ForStream(seed, path).NextUInt64();
        Assert.Equal(First(42, 3, 5), First(42, 3, 5));
        var distinct = new[] { First(42, 3, 5), First(43, 3, 5), First(42, 4, 5), First(42, 3, 6), First(42, 5, 3), First(42, 3), First(42, 3, 5, 0) };
        Assert.Equal(distinct.Length, distinct.Distinct().Count());
    }

    [Fact]
    public void NextIntIsUniformByChiSquare()
    {
        var random = DeterministicRandom.ForStream(1);
        var counts = new int[6];
        const int draws = 60_000;
        for (var i = 0; i < draws; i++) counts[random.NextInt(6)]++;
        var expected = draws / 6.0;
        var chiSquare = counts.Sum(c => (c - expected) * (c - expected) / expected);
        Assert.True(chiSquare < 20.5, $"chi² = {chiSquare} over {string.Join(",", counts)} (p < 0.001 for 5 degrees of freedom)");
    }

    [Fact]
    public void SampleWithoutReplacementIsDistinctAndUniform()
    {
        var random = DeterministicRandom.ForStream(2);
        var firstPosition = new int[10];
        var anyPosition = new int[10];
        const int draws = 20_000;
        for (var i = 0; i < draws; i++)
        {
            var sample = random.SampleWithoutReplacement(10, 3);
            Assert.Equal(3, sample.Distinct().Count());
            Assert.All(sample, s => Assert.InRange(s, 0, 9));
            firstPosition[sample[0]]++;
            foreach (var s in sample) anyPosition[s]++;
        }
        // Each value: P(first) = 1/10, P(drawn at all) = 3/10; tolerance 5 standard deviations.
        Assert.All(firstPosition, c => Assert.InRange(c / (double)draws, 0.1 - 5 * 0.0021, 0.1 + 5 * 0.0021));
        Assert.All(anyPosition, c => Assert.InRange(c / (double)draws, 0.3 - 5 * 0.0032, 0.3 + 5 * 0.0032));
        Assert.Equal(Enumerable.Range(0, 10), random.SampleWithoutReplacement(10, 10).Order());
    }

    [Fact]
    public void ShuffleIsAPermutation()
    {
        var items = Enumerable.Range(0, 50).ToArray();
        DeterministicRandom.ForStream(3).Shuffle(items.AsSpan());
        Assert.NotEqual(Enumerable.Range(0, 50), items);
        Assert.Equal(Enumerable.Range(0, 50), items.Order());
    }
}
