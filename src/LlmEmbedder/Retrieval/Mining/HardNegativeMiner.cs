using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval.Scoring;

namespace LlmEmbedder.Retrieval.Mining;

/// <summary>hn_mine's settings (FlagEmbedding's flag names in the comments).</summary>
public sealed record MiningOptions
{
    /// <summary>First 0-based hit position sampled from (--range_for_sampling 10-210 → 10).</summary>
    public int RangeStart { get; init; } = 10;

    /// <summary>End of the sampled positions, exclusive (10-210 → 210): positions 10..209, i.e. ranks 11 to 210.</summary>
    public int RangeEnd { get; init; } = 210;

    /// <summary>Negatives per row (--negative_number).</summary>
    [ArgumentRange(1)]
    public int NegativeNumber { get; init; } = 15;

    public long Seed { get; init; } = 42;

    /// <summary>Query prefix for the queries, key prefix for the pool; the written texts never carry them.</summary>
    public Instruction? Instruction { get; init; }

    /// <summary>--absolute_margin: drop a candidate whose score is within this much of the row's positive score (<see cref="MarginRule"/>).</summary>
    [ArgumentRange(0)]
    public double? AbsoluteMargin { get; init; }

    /// <summary>--relative_margin: drop a candidate scoring above (1 − this) × the row's positive score (<see cref="MarginRule"/>).</summary>
    [ArgumentRange(0, 1)]
    public double? RelativeMargin { get; init; }

    public MarginRule Margins => new(AbsoluteMargin, RelativeMargin);

    public int BatchSize { get; init; } = 256;
    public SearchIndexKind Index { get; init; } = SearchIndexKind.Exact;

    /// <summary>--encoding of the input file and the candidate pool.</summary>
    public TextEncoding Encoding { get; init; } = TextEncoding.Utf8;

    /// <summary>Parses "10-210" (start-end, end exclusive, as a Python slice).</summary>
    public static (int Start, int End) ParseRange(string range)
    {
        var parts = range.Split('-');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var start)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var end)
            && end > start)
            return (start, end);
        throw new EmbedderException($"range_for_sampling '{range}': expected start-end with start < end, e.g. 10-210");
    }
}

/// <summary>What a mining run did.</summary>
/// <param name="RangeEnd">The end of the positions sampled from: range_for_sampling's, or the pool size when that ends past the pool.</param>
/// <param name="RowsToppedUp">Rows whose range held fewer than negative_number usable texts, completed from random pool texts.</param>
/// <param name="RowsShort">Rows left with fewer than negative_number negatives because the pool had no more usable texts.</param>
/// <param name="LinesWithoutNegatives">Input lines of the rows written with "neg": [] (training drops them), a subset of the short rows.</param>
/// <param name="Margins">What the margin rules removed, when --absolute_margin or --relative_margin was given.</param>
public sealed record MiningResult(int Rows, int PoolSize, int RangeEnd, int RowsToppedUp, int RowsShort, IReadOnlyList<long> LinesWithoutNegatives,
    bool PoolFromCache, int TeacherScoresDropped, MarginCounts? Margins = null);

/// <summary>The negatives chosen for each row (<see cref="HardNegativeMiner.Select"/>).</summary>
public sealed record NegativeSelection(IReadOnlyList<string[]> Negatives, int RowsToppedUp, int RowsShort, MarginCounts? Margins);

/// <summary>
/// Hard-negative mining (FlagEmbedding's hn_mine, docs/REFERENCE.md §7): encode a candidate pool, search each query's top
/// range_end hits, keep those at positions [range_start, range_end), drop the query's positives and the query itself
/// (compared by text), sample negative_number of them, and top up from random pool texts when too few remain.
/// With --absolute_margin / --relative_margin, candidates scoring too close to the row's positive are dropped first
/// (<see cref="MarginRule"/>; scores from the search's similarity, or from a --scorer such as a cross-encoder), and
/// the top-up texts must pass the same rules.
/// </summary>
/// <remarks>
/// Differences from the reference, on purpose (docs/DIFFERENCES.md): the positive filter compares texts, so a
/// positive is never returned as a negative (the reference's filter never matched); the top-up never draws a
/// positive, the query, a text already chosen, or a text ranked above the range (the likeliest unlabelled
/// positives), and never repeats a text; sampled negatives stay in rank order (hardest first); each row has its own
/// random stream (seed, row number), so the output depends only on the inputs and the seed; teacher_scores of a
/// row no longer match its new negatives and are removed.
/// </remarks>
public static class HardNegativeMiner
{
    /// <param name="scorer">Rescores the candidates and positives for the margin rules (sentence-transformers' cross_encoder);
    /// null: the search's own similarity. Used only with a margin.</param>
    public static MiningResult Run(
        CachingEncoder encoder, string inputFile, string? candidatePool, string outputFile, MiningOptions options,
        IProgress<EncodingProgress>? progress = null, CancellationToken cancellationToken = default, IPairScorer? scorer = null)
    {
        Validate(options);
        var rows = MiningInput.ReadRows(inputFile, options.Encoding);
        var pool = MiningInput.ReadPool(candidatePool, rows, options.Encoding);
        // Known before anything is encoded: a range that starts past the pool would leave every row without a negative.
        if (options.RangeStart >= pool.Count)
            throw new EmbedderException($"--range_for_sampling {options.RangeStart}-{options.RangeEnd} starts past the pool of {pool.Count} texts " +
                $"(positions 0-{pool.Count - 1}); start lower or give a larger --candidate_pool");
        int rangeEnd = Math.Min(options.RangeEnd, pool.Count);

        var poolEmbeddings = encoder.Encode(pool, EmbeddingRole.Key, options.Instruction?.Key ?? "", null, options.BatchSize, "pool", progress);
        var queryEmbeddings = encoder.Encode(rows.Select(r => r.Query).ToArray(), EmbeddingRole.Query, options.Instruction?.Query ?? "", null, options.BatchSize, "queries", progress);
        var ranked = VectorSearch.Search(options.Index, queryEmbeddings.Values, poolEmbeddings.Values, poolEmbeddings.Dimension,
            rangeEnd, cancellationToken);

        var margins = options.Margins.IsActive
            ? scorer is null
                ? EmbeddingMargins(encoder, rows, options, queryEmbeddings, poolEmbeddings, progress)
                : ScorerMargins(scorer, rows, pool, ranked, options, progress)
            : null;
        var selection = Select(rows, pool, ranked, options, margins);
        var negatives = selection.Negatives;
        var linesWithoutNegatives = options.NegativeNumber == 0 ? []
            : Enumerable.Range(0, rows.Count).Where(r => negatives[r].Length == 0).Select(r => rows[r].Line).ToList();
        int teacherScoresDropped = 0;
        FileUtil.WriteAtomic(outputFile, stream =>
        {
            using var writer = new StreamWriter(stream, new System.Text.UTF8Encoding(false));
            for (int r = 0; r < rows.Count; r++)
            {
                var json = rows[r].Json.DeepClone().AsObject();
                json["neg"] = new JsonArray(negatives[r].Select(text => (JsonNode?)JsonValue.Create(text)).ToArray());
                if (json.Remove("teacher_scores")) teacherScoresDropped++;
                writer.Write(json.ToJsonString(JsonFormatting.OneLine));
                writer.Write('\n');
            }
        });
        return new MiningResult(rows.Count, pool.Count, rangeEnd, selection.RowsToppedUp, selection.RowsShort, linesWithoutNegatives,
            poolEmbeddings.FromCache, teacherScoresDropped, selection.Margins);
    }

    /// <summary>Margins on the search's own similarity: the inner product of the embeddings (cosine for the cos metric).</summary>
    private static CandidateMargins EmbeddingMargins(CachingEncoder encoder, IReadOnlyList<MiningRow> rows, MiningOptions options,
        EncodedTexts queries, EncodedTexts pool, IProgress<EncodingProgress>? progress)
    {
        var positives = rows.SelectMany(r => r.Positives).Distinct(StringComparer.Ordinal).ToArray();
        var positiveRow = positives.Select((text, i) => (text, i)).ToDictionary(p => p.text, p => p.i, StringComparer.Ordinal);
        var positiveEmbeddings = positives.Length == 0 ? null
            : encoder.Encode(positives, EmbeddingRole.Key, options.Instruction?.Key ?? "", null, options.BatchSize, "positives", progress);
        int dimension = queries.Dimension;
        var positiveScores = rows.Select((row, r) => MarginRule.PositiveScore(row.Positives
            .Select(p => EmbeddingPairScorer.Dot(queries.Values, r, positiveEmbeddings!.Values, positiveRow[p], dimension)).ToArray())).ToArray();
        return new CandidateMargins(options.Margins, positiveScores,
            (r, poolIndices) => poolIndices.Select(i => EmbeddingPairScorer.Dot(queries.Values, r, pool.Values, i, dimension)).ToArray());
    }

    /// <summary>
    /// Margins on a scorer's scores: the positives and every hit of the sampling range are scored up front (one pass
    /// with progress); a top-up text is scored when drawn.
    /// </summary>
    private static CandidateMargins ScorerMargins(IPairScorer scorer, IReadOnlyList<MiningRow> rows, IReadOnlyList<string> pool,
        SearchResult ranked, MiningOptions options, IProgress<EncodingProgress>? progress)
    {
        var inRange = ranked.Indices.Select(hits => hits.Take(Math.Min(options.RangeEnd, hits.Length)).Skip(options.RangeStart).Where(i => i >= 0).ToArray()).ToArray();
        var groups = rows.Select((row, r) => new PairGroup(row.Query, [.. row.Positives, .. inRange[r].Select(i => pool[i])])).ToList();
        var scores = scorer.Score(groups, progress is null ? null : new InlineProgress<ScoringProgress>(p => progress.Report(new EncodingProgress($"{p.What} ({scorer.Description})", p.Done, p.Total))));
        var known = new Dictionary<int, float>[rows.Count];
        var positiveScores = new float?[rows.Count];
        for (int r = 0; r < rows.Count; r++)
        {
            int positives = rows[r].Positives.Count;
            positiveScores[r] = MarginRule.PositiveScore(scores[r][..positives]);
            known[r] = [];
            for (int c = 0; c < inRange[r].Length; c++) known[r][inRange[r][c]] = scores[r][positives + c];
        }
        return new CandidateMargins(options.Margins, positiveScores, (r, poolIndices) =>
        {
            var missing = poolIndices.Where(i => !known[r].ContainsKey(i)).Distinct().ToArray();
            if (missing.Length > 0)
            {
                var fresh = scorer.Score([new PairGroup(rows[r].Query, missing.Select(i => pool[i]).ToArray())])[0];
                for (int m = 0; m < missing.Length; m++) known[r][missing[m]] = fresh[m];
            }
            return poolIndices.Select(i => known[r][i]).ToArray();
        });
    }

    /// <summary>
    /// The negatives of each row from its ranked pool hits (<paramref name="ranked"/>: pool indices, best first).
    /// The rule of the class summary; separate from encoding so it can be checked on hand-made rankings.
    /// </summary>
    public static IReadOnlyList<string[]> SelectNegatives(
        IReadOnlyList<MiningRow> rows, IReadOnlyList<string> pool, SearchResult ranked, MiningOptions options,
        out int rowsToppedUp, out int rowsShort)
    {
        var selection = Select(rows, pool, ranked, options, margins: null);
        rowsToppedUp = selection.RowsToppedUp;
        rowsShort = selection.RowsShort;
        return selection.Negatives;
    }

    /// <summary><see cref="SelectNegatives"/> with the margin rules applied to the candidates and to the top-up texts.</summary>
    public static NegativeSelection Select(
        IReadOnlyList<MiningRow> rows, IReadOnlyList<string> pool, SearchResult ranked, MiningOptions options, CandidateMargins? margins)
    {
        Validate(options);
        if (ranked.QueryCount != rows.Count) throw new ArgumentException($"{ranked.QueryCount} rankings for {rows.Count} rows", nameof(ranked));
        var result = new string[rows.Count][];
        int toppedUp = 0, shortRows = 0, rowsWithoutPositives = 0;
        long candidates = 0, byAbsolute = 0, byRelative = 0, topUpRejected = 0;
        for (int r = 0; r < rows.Count; r++)
        {
            var row = rows[r];
            var random = DeterministicRandom.ForStream(options.Seed, r);
            var positives = row.Positives.ToHashSet(StringComparer.Ordinal);
            bool Usable(int poolIndex) => !positives.Contains(pool[poolIndex]) && !string.Equals(pool[poolIndex], row.Query, StringComparison.Ordinal);

            var hits = ranked.Indices[r];
            var inRange = new List<int>();
            for (int position = options.RangeStart; position < Math.Min(options.RangeEnd, hits.Length); position++)
                if (hits[position] >= 0 && Usable(hits[position])) inRange.Add(hits[position]);

            // The rules of the margins keep a subset of the pool texts, in the order given.
            Func<List<int>, List<int>>? passMargins = null;
            if (margins?.PositiveScores[r] is { } positiveScore)
            {
                var rule = margins.Rule;
                int rowIndex = r;
                passMargins = poolIndices =>
                {
                    var scores = margins.CandidateScores(rowIndex, poolIndices);
                    return poolIndices.Where((_, i) => rule.Judge(scores[i], positiveScore) == MarginVerdict.Kept).ToList();
                };
                var scores = margins.CandidateScores(r, inRange);
                var verdicts = scores.Select(score => rule.Judge(score, positiveScore)).ToArray();
                candidates += inRange.Count;
                byAbsolute += verdicts.Count(v => v == MarginVerdict.AbsoluteMargin);
                byRelative += verdicts.Count(v => v == MarginVerdict.RelativeMargin);
                inRange = inRange.Where((_, i) => verdicts[i] == MarginVerdict.Kept).ToList();
            }
            else if (margins is not null)
            {
                rowsWithoutPositives++;
            }

            List<int> chosen;
            if (inRange.Count > options.NegativeNumber)
            {
                var picked = random.SampleWithoutReplacement(inRange.Count, options.NegativeNumber);
                Array.Sort(picked); // back to rank order
                chosen = picked.Select(i => inRange[i]).ToList();
            }
            else
            {
                chosen = inRange;
            }

            if (chosen.Count < options.NegativeNumber)
            {
                toppedUp++;
                var excluded = chosen.ToHashSet();
                for (int position = 0; position < Math.Min(options.RangeStart, hits.Length); position++) excluded.Add(hits[position]);
                // Hits of the range that a margin dropped are as close to the positive as ever: never a top-up.
                foreach (var hit in hits.Take(Math.Min(options.RangeEnd, hits.Length)).Skip(options.RangeStart)) excluded.Add(hit);
                topUpRejected += TopUp(chosen, excluded, pool, Usable, maxUnusable: positives.Count + 1, options.NegativeNumber, random, passMargins);
                if (chosen.Count < options.NegativeNumber) shortRows++;
            }
            result[r] = chosen.Select(i => pool[i]).ToArray();
        }
        var counts = margins is null ? null : new MarginCounts(candidates, byAbsolute, byRelative, topUpRejected, rowsWithoutPositives);
        return new NegativeSelection(result, toppedUp, shortRows, counts);
    }

    /// <summary>
    /// Adds random usable pool texts not in <paramref name="excluded"/> (and passing <paramref name="passMargins"/>, when
    /// given) until there are <paramref name="wanted"/> or none is left. Returns how many drawn texts the margins rejected.
    /// </summary>
    /// <param name="maxUnusable">At most this many pool texts are unusable: the pool holds each text once, so only
    /// the positives and the query can match.</param>
    private static int TopUp(List<int> chosen, HashSet<int> excluded, IReadOnlyList<string> pool, Func<int, bool> usable,
        int maxUnusable, int wanted, DeterministicRandom random, Func<List<int>, List<int>>? passMargins)
    {
        // Every rejected draw is excluded or unusable, so drawing that many more than needed finds every usable text
        // there is; the margins can reject any number, so with them every text may have to be drawn.
        int draws = passMargins is null ? (int)Math.Min(pool.Count, (long)wanted - chosen.Count + excluded.Count + maxUnusable) : pool.Count;
        int rejected = 0;
        var pending = new List<int>();
        void Flush()
        {
            var kept = passMargins is null ? pending : passMargins(pending);
            rejected += pending.Count - kept.Count;
            chosen.AddRange(kept);
            pending.Clear();
        }
        foreach (var candidate in random.SampleWithoutReplacement(pool.Count, draws))
        {
            if (chosen.Count + pending.Count == wanted)
            {
                Flush();
                if (chosen.Count == wanted) break;
            }
            if (excluded.Contains(candidate) || !usable(candidate)) continue;
            pending.Add(candidate);
        }
        if (chosen.Count < wanted) Flush();
        return rejected;
    }

    private static void Validate(MiningOptions options)
    {
        if (options.RangeStart < 0 || options.RangeEnd <= options.RangeStart)
            throw new EmbedderException($"range_for_sampling {options.RangeStart}-{options.RangeEnd}: expected 0 <= start < end");
        ArgumentRanges.Validate(options);
    }
}
