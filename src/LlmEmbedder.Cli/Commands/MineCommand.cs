using System.CommandLine;
using System.Diagnostics;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Retrieval.Mining;

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

        var command = new Command("mine", "Mine hard negatives: sample each query's negatives from its ranked pool hits, never a positive or the query itself")
        {
            encoderOptions.Model, inputFile, outputFile, candidatePool, range, negativeNumber, seed, index,
            cacheDir, noCache,
        };
        command.AddRule([range], result => MiningOptions.ParseRange(result.ValueOr(range, DefaultRange)));
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
            };
            EncoderOptions.Note(request);
            var cache = parsed.GetValue(noCache) ? null : new EmbeddingCache(parsed.GetValue(cacheDir) ?? EmbeddingCache.DefaultDirectory());
            using var encoder = new CachingEncoder(request, cache);

            var clock = Stopwatch.StartNew();
            var progress = new ThrottledProgress<EncodingProgress>(step => step.Done >= step.Total,
                (step, _) => Console.Error.WriteLine($"encoding {step.What} {step.Done}/{step.Total}"));
            var input = parsed.GetRequiredValue(inputFile);
            var result = HardNegativeMiner.Run(encoder, input, parsed.GetValue(candidatePool), outputPath, options, progress);
            Console.Error.WriteLine($"wrote {outputPath}: {result.Rows} rows, {options.NegativeNumber} negatives each from positions {start}-{result.RangeEnd} of a pool of {result.PoolSize}" +
                $" ({(result.RangeEnd < end ? $"--range_for_sampling {start}-{end} ends past the pool; " : "")}" +
                $"pool embeddings {(result.PoolFromCache ? "from cache" : "encoded")}); {result.RowsToppedUp} rows topped up with random pool texts" +
                (result.RowsShort > 0 ? $", {result.RowsShort} still short (the pool has too few usable texts)" : "") +
                (result.LinesWithoutNegatives is [var first, ..] ? $", {result.LinesWithoutNegatives.Count} of them with no negative at all " +
                    $"(\"neg\": [], first {input}:{first}; training drops such rows)" : "") +
                (result.TeacherScoresDropped > 0 ? $"; teacher_scores removed from {result.TeacherScoresDropped} rows (they scored the old negatives)" : "") +
                $" in {clock.Elapsed.TotalSeconds:F1} s");
            return 0;
        });
        return command;
    }
}
