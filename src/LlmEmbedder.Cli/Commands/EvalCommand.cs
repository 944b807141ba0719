using System.CommandLine;
using System.Text.Json;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;
using Spectre.Console;

namespace LlmEmbedder.Cli.Commands;

/// <summary>eval: retrieval metrics of a model on FlagEmbedding eval JSONL + corpus, or on a BEIR / C-MTEB folder.</summary>
internal static class EvalCommand
{
    private const string MetricRules = """
        Metrics (binary relevance, averaged over the queries that have at least one relevant corpus row; the others are
        skipped and counted). For a query with relevant rows R and ranked hits P, at cutoff k:
          mrr@k    = 1 / rank of the first relevant hit, if that rank <= k; else 0
          recall@k = |R ∩ top-k of P| / |R|
          ndcg@k   = sum over relevant hits at rank i <= k of 1/log2(i+1), divided by sum_{i=1..min(|R|,k)} 1/log2(i+1)
        Equal scores rank the lower corpus row first; a row listed twice counts once; repeated ids in R count once.
        """;

    public static Command Create()
    {
        var evalData = new Option<string>("--eval_data")
        {
            Description = "Eval JSONL {query, pos_index, query_id?} (with --corpus), or a BEIR / C-MTEB folder (corpus.jsonl, queries.jsonl, qrels/<split>.tsv)",
            Required = true,
        };
        var corpus = new Option<string?>("--corpus") { Description = "Corpus JSONL whose fields fill --key_template (FlagEmbedding layout)" };
        var split = new Option<string>("--split") { Description = "qrels split of a BEIR folder", DefaultValueFactory = _ => "test" };
        var setOptions = new RetrievalSetOptions();
        var (dataRoot, keyTemplate, metrics, cutoffs) = (setOptions.DataRoot, setOptions.KeyTemplate, setOptions.Metrics, setOptions.Cutoffs);
        var hits = new Option<int>("--hits") { Description = "Corpus rows retrieved per query; at least the largest cutoff", DefaultValueFactory = _ => RetrievalEvaluation.DefaultHits }
            .WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.Hits)));
        var index = new Option<string>("--index") { Description = "exact (brute force) or hnsw (approximate, USearch)", DefaultValueFactory = _ => "exact" };
        index.AcceptOnlyFromAmong([.. VectorSearch.Names]);
        var encoderOptions = new EncoderOptions(defaultBatchSize: 256, "Instruction task; default: the eval file's first row's \"task\", else the model's only task");
        var outputDir = new Option<string?>("--output_dir") { Description = "Write metrics.json and results.jsonl ({query_id, pred, score}) here" };
        var compare = new Option<string?>("--compare") { Description = "A second model to evaluate the same way: side-by-side table and a bar chart" };
        var chart = new Option<string?>("--chart") { Description = "PNG of the comparison; default <output_dir>/comparison.png, else ./comparison.png" };
        var cacheDir = new Option<string?>("--cache_dir")
        {
            Description = "Embedding cache folder; default $LLM_EMBEDDER_CACHE, else $XDG_CACHE_HOME/llm-embedder, else ~/.cache/llm-embedder",
        };
        var noCache = new Option<bool>("--no_cache") { Description = "Always encode; neither read nor write the embedding cache" };

        var command = new Command("eval", "Evaluate retrieval (exact search by default).\n\n" + MetricRules)
        {
            encoderOptions.Model, encoderOptions.Dimensions, evalData, corpus, split, dataRoot, keyTemplate, metrics, cutoffs, hits, index,
            outputDir, compare, chart, cacheDir, noCache,
        };
        encoderOptions.AddTo(command);
        command.AddRule([hits, cutoffs], result => RetrievalEvaluation.CheckHits(
            result.ValueOr(hits, RetrievalEvaluation.DefaultHits), result.ValueOr(cutoffs, [.. RetrievalMetrics.DefaultCutoffs])));
        command.SetAction(parsed =>
        {
            // Where the results go is checked first: a wrong path should not cost an encoded corpus.
            var output = parsed.GetValue(outputDir);
            var chartPath = parsed.GetValue(chart) ?? Path.Combine(output ?? ".", "comparison.png");
            if (output is not null) OutputPath.CheckFolder(output, "--output_dir");
            if (parsed.GetValue(compare) is not null)
            {
                if (output is not null) OutputPath.CheckFolder(Path.Combine(output, "compare"), "--output_dir");
                OutputPath.CheckFile(chartPath, "--chart");
            }
            var textEncoding = encoderOptions.Encoding(parsed);
            var evalPath = EncoderEvaluator.ResolveDataPath(parsed.GetRequiredValue(evalData), parsed.GetRequiredValue(dataRoot));
            var corpusPath = parsed.GetValue(corpus) is { } c ? EncoderEvaluator.ResolveDataPath(c, parsed.GetRequiredValue(dataRoot)) : null;
            var template = parsed.GetRequiredValue(keyTemplate);
            var dataset = RetrievalDataset.Load(evalPath, corpusPath, parsed.GetRequiredValue(split), template, textEncoding);
            // As run_dense.py: without --task, the eval file's first row's "task" chooses the instruction.
            var task = encoderOptions.Task(parsed);
            var taskSource = "--task";
            if (task is null && File.Exists(evalPath) && EncoderEvaluator.FirstRowTask(evalPath, textEncoding) is { } rowTask)
                (task, taskSource) = (rowTask, $"{evalPath}: the first row's task");
            var settings = new EvaluationSettings(null, template, parsed.GetRequiredValue(metrics), parsed.GetRequiredValue(cutoffs),
                parsed.GetValue(hits), encoderOptions.BatchSize(parsed), VectorSearch.Parse(parsed.GetRequiredValue(index)), parsed.GetValue(encoderOptions.Dimensions));
            var cache = parsed.GetValue(noCache) ? null : new EmbeddingCache(parsed.GetValue(cacheDir) ?? EmbeddingCache.DefaultDirectory());
            // Every input is checked before the first line of progress, so a mistake is the only line printed.
            var firstRequest = encoderOptions.Request(parsed, parsed.GetRequiredValue(encoderOptions.Model));
            var secondRequest = parsed.GetValue(compare) is { } compared ? encoderOptions.Request(parsed, compared) : null;
            var firstSettings = settings with { Instruction = firstRequest.Spec.Instructions.For(task, taskSource) };
            var secondSettings = secondRequest is null ? null : settings with { Instruction = secondRequest.Spec.Instructions.For(task, taskSource) };
            settings.Validate();
            EncoderOptions.Note(firstRequest);
            if (secondRequest is not null) EncoderOptions.Note(secondRequest);
            Console.Error.WriteLine($"{dataset.Queries.Count} queries, {dataset.CorpusTexts.Count} corpus rows" +
                $", {Describe(firstSettings.Instruction!)}" + (cache is null ? ", cache off" : $", embedding cache {cache.Directory}"));

            var first = Evaluate(parsed.GetRequiredValue(encoderOptions.Model), firstRequest, dataset, firstSettings, cache);
            if (output is not null) WriteOutputs(output, dataset, first.Evaluation);

            if (secondRequest is null)
            {
                MetricTable.Print("value", first.Evaluation.Metrics.Values);
                return 0;
            }
            var second = parsed.GetRequiredValue(compare)!;
            if (secondSettings!.Instruction != firstSettings.Instruction)
                Console.Error.WriteLine($"{second}: {Describe(secondSettings.Instruction!)}");
            var other = Evaluate(second, secondRequest, dataset, secondSettings, cache);
            if (output is not null) WriteOutputs(Path.Combine(output, "compare"), dataset, other.Evaluation);
            var labels = PathLabels.Distinct([parsed.GetRequiredValue(encoderOptions.Model), second]);
            MetricTable.PrintComparison($"model: {labels[0]}", first.Evaluation.Metrics.Values, $"baseline: {labels[1]}", other.Evaluation.Metrics.Values,
                baselineFirst: false, "model − baseline");
            Charts.SaveMetricComparison(chartPath, [(labels[0], first.Evaluation.Metrics.Values), (labels[1], other.Evaluation.Metrics.Values)]);
            Console.Error.WriteLine($"wrote {chartPath}");
            return 0;
        });
        return command;
    }

    private static string Describe(Instruction instruction) => instruction.Query.Length == 0 && instruction.Key.Length == 0
        ? "no instruction"
        : $"query instruction \"{instruction.Query}\", key instruction \"{instruction.Key}\"";

    private static ModelEvaluationResult Evaluate(
        string modelArgument, EncoderRequest request, RetrievalDataset dataset, EvaluationSettings settings, EmbeddingCache? cache)
    {
        using var encoder = new CachingEncoder(request, cache);
        var progress = new ThrottledProgress<EncodingProgress>(step => step.Done >= step.Total,
            (step, _) => Console.Error.WriteLine($"{modelArgument}: {step.What} {step.Done}/{step.Total}"));
        var result = ModelEvaluation.Run(encoder, dataset, settings, progress);
        Console.Error.WriteLine($"{modelArgument}: dimension {result.Dimension}; corpus embeddings {(result.CorpusFromCache ? "from cache" : "encoded")}, " +
            $"queries {(result.QueriesFromCache ? "from cache" : "encoded")} in {result.EncodingTime.TotalSeconds:F1} s; " +
            $"{settings.Index.ToString().ToLowerInvariant()} search in {result.SearchTime.TotalSeconds:F2} s; " +
            $"{result.Evaluation.Metrics.QueriesEvaluated} queries evaluated" +
            (result.Evaluation.Metrics.QueriesWithoutPositives > 0 ? $", {result.Evaluation.Metrics.QueriesWithoutPositives} without positives skipped" : ""));
        return result;
    }

    private static void WriteOutputs(string dir, RetrievalDataset dataset, RetrievalEvaluationResult evaluation)
    {
        Directory.CreateDirectory(dir);
        RetrievalResults.WriteMetrics(Path.Combine(dir, "metrics.json"), evaluation.Metrics);
        RetrievalResults.WriteJsonl(Path.Combine(dir, "results.jsonl"), dataset, evaluation.Search);
        Console.Error.WriteLine($"wrote {Path.Combine(dir, "metrics.json")} and {Path.Combine(dir, "results.jsonl")}");
    }
}
