using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Retrieval.Mining;
using LlmEmbedder.Retrieval.Scoring;

namespace LlmEmbedder.Cli.Commands;

/// <summary>mine: hard negatives for training JSONL (FlagEmbedding's hn_mine flags).</summary>
internal static class MineCommand
{
    private const string DefaultRange = "10-210";

    public static Command Create()
    {
        var inputFile = new Option<string>("--input_file") { Description = "Training JSONL: {query, pos: [...], neg?: [...], ...}", Required = true };
        var outputFile = new Option<string>("--output_file") { Description = "Training JSONL with mined \"neg\" (other fields kept)", Required = true };
        var candidatePool = new Option<string?>("--candidate_pool")
        {
            Description = "JSONL {\"text\": ...} (or one text per line) to mine from; default: every pos and neg of the input",
        };
        var range = new Option<string>("--range_for_sampling")
        {
            Description = "Sample from hits at 0-based positions start..end-1 (10-210: ranks 11 to 210) (range: 0 <= start < end, start below the pool size)", DefaultValueFactory = _ => DefaultRange,
        };
        var negativeNumber = new Option<int>("--negative_number") { Description = "Negatives per row", DefaultValueFactory = _ => 15 }
            .WithRange(ArgumentRanges.Of<MiningOptions>(nameof(MiningOptions.NegativeNumber)));
        var seed = new Option<long>("--seed") { Description = "Random seed (same seed and inputs: same output)", DefaultValueFactory = _ => 42 }
            .WithRange(null);   // any long; still parsed with a clear message
        var index = new Option<string>("--index") { Description = "exact (brute force) or hnsw (approximate, USearch)", DefaultValueFactory = _ => "exact" };
        index.AcceptOnlyFromAmong([.. VectorSearch.Names]);
        var encoderOptions = new EncoderOptions(defaultBatchSize: 256);
        var cacheDir = new Option<string?>("--cache_dir") { Description = "Embedding cache folder (as eval)" };
        var noCache = new Option<bool>("--no_cache") { Description = "Always encode the pool" };
        var absoluteMargin = new Option<double?>("--absolute_margin")
        {
            Description = "Drop a candidate whose score + this margin exceeds the row's positive score (the lowest one when there are several)",
        }.WithRange(ArgumentRanges.Of<MiningOptions>(nameof(MiningOptions.AbsoluteMargin)));
        var relativeMargin = new Option<double?>("--relative_margin")
        {
            Description = "Drop a candidate scoring above (1 - this) x the row's positive score (0.05: negatives at most 95% as similar as the positive)",
        }.WithRange(ArgumentRanges.Of<MiningOptions>(nameof(MiningOptions.RelativeMargin)));
        var scorer = new Option<string?>("--scorer")
        {
            Description = "A cross-encoder (BertForSequenceClassification folder or hub id) that rescores the positives and the candidates for the margins; default: --model's similarity",
        };
        var scorerSigmoid = ScoreCommand.SigmoidOption("--scorer_sigmoid");

        var command = new Command("mine", "Mine hard negatives: sample each query's negatives from its ranked pool hits, never a positive or the query itself")
        {
            encoderOptions.Model, inputFile, outputFile, candidatePool, range, negativeNumber, seed, index,
            cacheDir, noCache, absoluteMargin, relativeMargin, scorer, scorerSigmoid,
        };
        command.AddRule([range], result => MiningOptions.ParseRange(result.ValueOr(range, DefaultRange)));
        command.AddRule([scorer, scorerSigmoid, absoluteMargin, relativeMargin], result =>
        {
            bool hasScorer = result.ValueOr<string?>(scorer, null) is not null;
            if (hasScorer && result.ValueOr<double?>(absoluteMargin, null) is null && result.ValueOr<double?>(relativeMargin, null) is null)
                throw new EmbedderException("--scorer rescores candidates for --absolute_margin or --relative_margin; give one of them");
            if (!hasScorer && result.ValueOr(scorerSigmoid, false))
                throw new EmbedderException("--scorer_sigmoid applies to the --scorer's scores; give --scorer");
        });
        encoderOptions.AddTo(command);
        command.SetAction(parsed =>
        {
            var outputPath = parsed.GetRequiredValue(outputFile);
            OutputPath.CheckFile(outputPath, "--output_file");
            var textEncoding = encoderOptions.Encoding(parsed);
            var (start, end) = MiningOptions.ParseRange(parsed.GetRequiredValue(range));
            var request = encoderOptions.Request(parsed, parsed.GetRequiredValue(encoderOptions.Model));
            var options = new MiningOptions
            {
                RangeStart = start,
                RangeEnd = end,
                NegativeNumber = parsed.GetValue(negativeNumber),
                Seed = parsed.GetValue(seed),
                // The query side's instruction on the queries, the key side's on the pool.
                Instruction = request.Spec.Instructions.For(encoderOptions.Task(parsed)),
                BatchSize = encoderOptions.BatchSize(parsed),
                Index = VectorSearch.Parse(parsed.GetRequiredValue(index)),
                Encoding = textEncoding,
                AbsoluteMargin = parsed.GetValue(absoluteMargin),
                RelativeMargin = parsed.GetValue(relativeMargin),
            };
            var scorerArgument = parsed.GetValue(scorer);
            var scorerDir = scorerArgument is null ? null : ModelArgument.Resolve(scorerArgument);
            if (scorerDir is not null && !CrossEncoder.IsCrossEncoderFolder(scorerDir))
                throw new EmbedderException($"--scorer {scorerArgument}: not a cross-encoder (its config.json declares no ...ForSequenceClassification architecture)");
            EncoderOptions.Note(request);
            using var crossEncoder = scorerDir is null ? null
                : ScoreCommand.OpenCrossEncoder(scorerDir, maxLength: null, encoderOptions.BatchSize(parsed), parsed.GetValue(scorerSigmoid));
            var cache = parsed.GetValue(noCache) ? null : new EmbeddingCache(parsed.GetValue(cacheDir) ?? EmbeddingCache.DefaultDirectory());
            using var encoder = new CachingEncoder(request, cache);

            var clock = Stopwatch.StartNew();
            var progress = new ThrottledProgress<EncodingProgress>(step => step.Done >= step.Total,
                (step, _) => Console.Error.WriteLine($"encoding {step.What} {step.Done}/{step.Total}"));
            var input = parsed.GetRequiredValue(inputFile);
            var result = HardNegativeMiner.Run(encoder, input, parsed.GetValue(candidatePool), outputPath, options, progress, scorer: crossEncoder);
            Console.Error.WriteLine($"wrote {outputPath}: {result.Rows} rows, {options.NegativeNumber} negatives each from positions {start}-{result.RangeEnd} of a pool of {result.PoolSize}" +
                $" ({(result.RangeEnd < end ? $"--range_for_sampling {start}-{end} ends past the pool; " : "")}" +
                $"pool embeddings {(result.PoolFromCache ? "from cache" : "encoded")}); {result.RowsToppedUp} rows topped up with random pool texts" +
                (result.RowsShort > 0 ? $", {result.RowsShort} still short (the pool has too few usable texts)" : "") +
                (result.LinesWithoutNegatives is [var first, ..] ? $", {result.LinesWithoutNegatives.Count} of them with no negative at all " +
                    $"(\"neg\": [], first {input}:{first}; training drops such rows)" : "") +
                (result.TeacherScoresDropped > 0 ? $"; teacher_scores removed from {result.TeacherScoresDropped} rows (they scored the old negatives)" : "") +
                $" in {clock.Elapsed.TotalSeconds:F1} s");
            if (result.Margins is { } margins) Console.Error.WriteLine(MarginSummary(options, margins, crossEncoder));
            return 0;
        });
        return command;
    }

    /// <summary>How many candidates each margin rule removed, with what scores.</summary>
    private static string MarginSummary(MiningOptions options, MarginCounts counts, IPairScorer? scorer)
    {
        var rules = new List<string>();
        if (options.AbsoluteMargin is { } absolute) rules.Add($"--absolute_margin {absolute.ToString(CultureInfo.InvariantCulture)} removed {counts.RemovedByAbsolute}");
        if (options.RelativeMargin is { } relative) rules.Add($"--relative_margin {relative.ToString(CultureInfo.InvariantCulture)} removed {counts.RemovedByRelative}");
        return $"margins ({scorer?.Description ?? "the model's similarity"}, against each row's lowest positive score): " +
            $"{string.Join(", ", rules)} of {counts.Candidates} candidates in range" +
            (counts.TopUpRejected > 0 ? $"; {counts.TopUpRejected} random top-up texts rejected" : "") +
            (counts.RowsWithoutPositives > 0 ? $"; {counts.RowsWithoutPositives} rows without a positive kept every candidate" : "");
    }
}
