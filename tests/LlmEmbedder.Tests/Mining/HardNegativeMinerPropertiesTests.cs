using System.Text.Json.Nodes;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Retrieval.Mining;

namespace LlmEmbedder.Tests.Mining;

/// <summary>
/// The negative-selection rule on hand-made rankings, checked as properties over many random cases: never a positive
/// (by text) or the query, never a hit ranked outside the range while the range has enough, never one ranked above
/// it, no repeats, the requested count when the pool allows, and the same output for the same seed.
/// </summary>
public sealed class HardNegativeMinerPropertiesTests
{
    private sealed record Case(List<MiningRow> Rows, string[] Pool, SearchResult Ranked, MiningOptions Options);

    [Fact]
    public void OnRandomRankingsNoPositiveNoQueryNoRepeatAndRangeRespected()
    {
        var random = new Random(20240611);
        int casesWithTopUp = 0, casesWithoutTopUp = 0;
        for (int trial = 0; trial < 300; trial++)
        {
            var c = RandomCase(random);
            var negatives = HardNegativeMiner.SelectNegatives(c.Rows, c.Pool, c.Ranked, c.Options, out _, out _);
            for (int r = 0; r < c.Rows.Count; r++)
            {
                var row = c.Rows[r];
                var hits = c.Ranked.Indices[r];
                var position = hits.Select((poolIndex, p) => (poolIndex, p)).ToDictionary(x => c.Pool[x.poolIndex], x => x.p);
                var usableInRange = Enumerable.Range(c.Options.RangeStart, Math.Max(0, Math.Min(c.Options.RangeEnd, hits.Length) - c.Options.RangeStart))
                    .Count(p => !row.Positives.Contains(c.Pool[hits[p]]) && c.Pool[hits[p]] != row.Query);
                var usableInPool = c.Pool.Count(t => !row.Positives.Contains(t) && t != row.Query
                    && !(position.TryGetValue(t, out var p) && p < c.Options.RangeStart));

                Assert.Equal(negatives[r].Length, negatives[r].Distinct().Count());
                Assert.DoesNotContain(negatives[r], row.Positives.Contains);
                Assert.DoesNotContain(row.Query, negatives[r]);
                Assert.Equal(Math.Min(c.Options.NegativeNumber, usableInPool), negatives[r].Length);
                foreach (var negative in negatives[r])
                    Assert.False(position.TryGetValue(negative, out var p) && p < c.Options.RangeStart, $"'{negative}' ranked {p}, above the range");
                if (usableInRange >= c.Options.NegativeNumber)
                {
                    casesWithoutTopUp++;
                    var positions = negatives[r].Select(n => position[n]).ToArray();
                    Assert.All(positions, p => Assert.InRange(p, c.Options.RangeStart, c.Options.RangeEnd - 1));
                    Assert.Equal(positions.Order(), positions); // hardest first
                }
                else
                {
                    casesWithTopUp++;
                }
            }
            var again = HardNegativeMiner.SelectNegatives(c.Rows, c.Pool, c.Ranked, c.Options, out _, out _);
            Assert.Equal(negatives, again);
        }
        // Both branches of the rule were exercised.
        Assert.True(casesWithTopUp > 100 && casesWithoutTopUp > 100, $"{casesWithTopUp} rows topped up, {casesWithoutTopUp} not");
    }

    [Fact]
    public void APositiveInsideTheRangeIsSkippedAndTheNextHitTakesItsPlace()
    {
        // Pool texts t0..t9 ranked in index order; range 2-6 holds t2..t5, of which t3 is a positive and t4 the query.
        var pool = Enumerable.Range(0, 10).Select(i => $"t{i}").ToArray();
        var row = Row("t4", positives: ["t3", "not in pool"]);
        var ranked = new SearchResult([Enumerable.Range(0, 10).ToArray()], [Enumerable.Range(0, 10).Select(i => 1f - i / 10f).ToArray()]);
        var options = new MiningOptions { RangeStart = 2, RangeEnd = 6, NegativeNumber = 2, Seed = 1 };

        var negatives = HardNegativeMiner.SelectNegatives([row], pool, ranked, options, out var toppedUp, out var stillShort);
        Assert.Equal(["t2", "t5"], negatives[0]);
        Assert.Equal(0, toppedUp);

        // Asking for more than the range holds: the top-up comes from below the range (t6..t9), never t0/t1 above it.
        var more = HardNegativeMiner.SelectNegatives([row], pool, ranked, options with { NegativeNumber = 6 }, out toppedUp, out stillShort);
        Assert.Equal(["t2", "t5"], more[0][..2]);
        Assert.Equal(["t6", "t7", "t8", "t9"], more[0][2..].Order());
        Assert.Equal((1, 0), (toppedUp, stillShort));

        // More than the pool can give: every usable text once, and the row counted as short.
        var tooMany = HardNegativeMiner.SelectNegatives([row], pool, ranked, options with { NegativeNumber = 9 }, out _, out stillShort);
        Assert.Equal(6, tooMany[0].Length);
        Assert.Equal(1, stillShort);
    }

    [Fact]
    public void TheSeedChangesTheSampleAndOnlyTheSeed()
    {
        var pool = Enumerable.Range(0, 300).Select(i => $"t{i}").ToArray();
        var rows = Enumerable.Range(0, 20).Select(i => Row($"q{i}", [$"t{i}"])).ToList();
        var ranked = new SearchResult(rows.Select((_, r) => Enumerable.Range(0, 210).Select(p => (p * 7 + r) % 300).ToArray()).ToArray(),
            rows.Select(_ => Enumerable.Range(0, 210).Select(p => -p / 1000f).ToArray()).ToArray());
        var options = new MiningOptions();
        var first = HardNegativeMiner.SelectNegatives(rows, pool, ranked, options, out _, out _);
        var same = HardNegativeMiner.SelectNegatives(rows, pool, ranked, options with { Seed = 42 }, out _, out _);
        var other = HardNegativeMiner.SelectNegatives(rows, pool, ranked, options with { Seed = 43 }, out _, out _);
        Assert.Equal(first, same);
        Assert.NotEqual(first.Select(n => string.Join("|", n)), other.Select(n => string.Join("|", n)));
    }

    [Theory]
    [InlineData("10-210", 10, 210)]
    [InlineData("0-5", 0, 5)]
    public void RangeParsesAsAPythonSlice(string text, int start, int end) => Assert.Equal((start, end), MiningOptions.ParseRange(text));

    [Theory]
    [InlineData("210-10")]
    [InlineData("5-5")]
    [InlineData("10")]
    [InlineData("a-b")]
    [InlineData("-1-5")]
    public void BadRangesAreRejectedWithTheExpectedForm(string text)
    {
        var error = Assert.Throws<EmbedderException>(() => MiningOptions.ParseRange(text));
        Assert.Contains("e.g. 10-210", error.Message);
    }

    private static MiningRow Row(string query, string[] positives) =>
        new(1, new JsonObject { ["query"] = query }, query, positives, []);

    /// <summary>A pool of distinct texts, rows whose positives and query may sit anywhere in their ranking (or not in the pool).</summary>
    private static Case RandomCase(Random random)
    {
        int poolSize = random.Next(5, 80);
        var pool = Enumerable.Range(0, poolSize).Select(i => $"text {i}").ToArray();
        int start = random.Next(0, 10), end = start + random.Next(1, 40);
        var options = new MiningOptions { RangeStart = start, RangeEnd = end, NegativeNumber = random.Next(1, 20), Seed = random.Next() };
        var rows = new List<MiningRow>();
        var indices = new List<int[]>();
        for (int r = 0; r < random.Next(1, 6); r++)
        {
            var positives = Enumerable.Range(0, random.Next(0, 4))
                .Select(_ => random.Next(3) == 0 ? $"outside {random.Next()}" : pool[random.Next(poolSize)]).ToArray();
            var query = random.Next(3) == 0 ? pool[random.Next(poolSize)] : $"query {r}";
            rows.Add(Row(query, positives));
            indices.Add(Enumerable.Range(0, poolSize).OrderBy(_ => random.Next()).Take(Math.Min(end, poolSize)).ToArray());
        }
        var scores = indices.Select(hits => hits.Select((_, p) => -(float)p).ToArray()).ToArray();
        return new Case(rows, pool, new SearchResult([.. indices], scores), options);
    }
}
