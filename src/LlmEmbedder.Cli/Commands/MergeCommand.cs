using System.CommandLine;
using System.Globalization;
using LlmEmbedder.Data;
using LlmEmbedder.Merging;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;
using Spectre.Console;

namespace LlmEmbedder.Cli.Commands;

/// <summary>What to merge: models in order, fixed weights or null for a search, and the sets a search measures.</summary>
internal sealed record MergeRequest(
    IReadOnlyList<string> Models, IReadOnlyList<double>? Weights, string OutputDir, IReadOnlyList<MergeEvalSet> Sets, string Metric, double WeightStep);

/// <summary>merge: a weighted average of models' parameters (LM-Cocktail), with fixed weights or weights searched on eval sets.</summary>
internal static class MergeCommand
{
    public const string DefaultMetric = "mrr@10";
    public const double DefaultWeightStep = 0.1;

    public static Command Create()
    {
        var models = new Option<string[]>("--models")
        {
            Description = "Two or more models of one architecture and vocabulary (folders or hub ids); the first one's encoder spec, tokenizer and config are kept",
            Required = true, AllowMultipleArgumentsPerToken = true,
        };
        var weights = new Option<string[]>("--weights")
        {
            Description = "One weight per model, >= 0, summing to 1; or auto: the grid weights with the best mean --metric over the --eval_data sets",
            Required = true, AllowMultipleArgumentsPerToken = true,
        };
        var outputDir = new Option<string>("--output_dir") { Description = "The merged model folder (replaced whole), with merge.json", Required = true };
        var evalData = new Option<string[]>("--eval_data")
        {
            Description = "With --weights auto: one or more eval JSONL files (or BEIR folders) to choose the weights on", AllowMultipleArgumentsPerToken = true,
        };
        var corpus = new Option<string[]>("--corpus") { Description = "The corpus of each --eval_data file, in the same order", AllowMultipleArgumentsPerToken = true };
        var metric = new Option<string>("--metric") { Description = "The main metric whose mean over the sets --weights auto maximises", DefaultValueFactory = _ => DefaultMetric };
        var weightStep = new Option<double>("--weight_step")
        {
            Description = "Grid step of --weights auto (1/step a whole number)", DefaultValueFactory = _ => DefaultWeightStep,
        }.WithRange(new ArgumentRangeAttribute(0, 1) { MinExclusive = true });
        var setOptions = new RetrievalSetOptions();
        var (dataRoot, keyTemplate, metrics, cutoffs) = (setOptions.DataRoot, setOptions.KeyTemplate, setOptions.Metrics, setOptions.Cutoffs);
        var batchSize = new Option<int>("--batch_size") { Description = "Texts per forward pass in evaluation", DefaultValueFactory = _ => 256 }
            .WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.BatchSize)));
        var encoding = new TextEncodingOption();

        var command = new Command("merge", "Average the parameters of models fine-tuned from one base (LM-Cocktail): fixed weights, or --weights auto searched on eval sets")
        {
            models, weights, outputDir, evalData, corpus, metric, weightStep, dataRoot, keyTemplate, metrics, cutoffs, batchSize,
        };
        encoding.AddTo(command);
        command.AddRule([weights, models, evalData, corpus], result =>
        {
            var given = result.ValueOr(weights, []);
            var sets = result.ValueOr(evalData, []);
            // A weight that is no number is reported when the command starts (ParseWeights), after the other flags' errors.
            if (given is not ["auto"] && !given.All(w => double.TryParse(w, NumberStyles.Float, CultureInfo.InvariantCulture, out _))) return;
            if (ParseWeights(given) is { } fixedWeights)
            {
                ModelMerge.CheckWeights(fixedWeights, result.ValueOr(models, []).Length);
                if (sets.Length > 0) throw new EmbedderException("--eval_data is for --weights auto; fixed weights need no evaluation");
                return;
            }
            if (sets.Length == 0) throw new EmbedderException("--weights auto needs --eval_data (one or more sets to choose the weights on)");
            var corpora = result.ValueOr(corpus, []);
            if (corpora.Length != 0 && corpora.Length != sets.Length)
                throw new EmbedderException($"--corpus has {corpora.Length} files for {sets.Length} --eval_data sets; give one corpus per set, in the same order");
        });
        command.AddRule([weightStep], result => MergeWeightSearch.Divisions(result.ValueOr(weightStep, DefaultWeightStep)));
        command.AddRule([metric, metrics, cutoffs], result => MergeWeightSearch.CheckMetric(result.ValueOr(metric, DefaultMetric),
            result.ValueOr(metrics, [.. RetrievalMetrics.DefaultMetrics]), result.ValueOr(cutoffs, [.. RetrievalMetrics.DefaultCutoffs])));
        command.SetAction(parsed =>
        {
            var output = parsed.GetRequiredValue(outputDir);
            OutputPath.CheckFolder(output, "--output_dir");
            var fixedWeights = ParseWeights(parsed.GetRequiredValue(weights));
            var settings = new EvaluationSettings(null, parsed.GetRequiredValue(keyTemplate), parsed.GetRequiredValue(metrics), parsed.GetRequiredValue(cutoffs),
                BatchSize: parsed.GetValue(batchSize));
            var sets = fixedWeights is null
                ? EvalSets(parsed.GetRequiredValue(evalData), parsed.GetValue(corpus) ?? [], parsed.GetRequiredValue(dataRoot), encoding.Get(parsed), settings)
                : [];
            var modelDirs = parsed.GetRequiredValue(models).Select(m => ModelArgument.Resolve(m)).ToList();
            Run(new MergeRequest(modelDirs, fixedWeights, output, sets, parsed.GetRequiredValue(metric), parsed.GetValue(weightStep)));
            return 0;
        });
        return command;
    }

    /// <summary>One eval set per --eval_data entry, named by the shortest path tails that tell them apart.</summary>
    public static IReadOnlyList<MergeEvalSet> EvalSets(IReadOnlyList<string> evalData, IReadOnlyList<string> corpora, string dataRoot, TextEncoding encoding,
        EvaluationSettings settings)
    {
        var names = PathLabels.Distinct(evalData);
        return evalData.Select((data, i) =>
        {
            var corpus = corpora.Count > 0 ? corpora[i] : null;
            return new MergeEvalSet(names[i], data, corpus, EncoderEvaluator.Load(data, corpus, dataRoot, encoding, settings));
        }).ToList();
    }

    /// <summary>Merges as asked, printing the search (when there is one) and what was written.</summary>
    public static MergeSearchResult? Run(MergeRequest request)
    {
        // Every model is loaded and checked before the first line, so a refused input is the only line printed.
        using var merge = ModelMerge.Open(request.Models);
        if (request.Weights is null) MergeWeightSearch.CheckSets(merge, request.Sets);
        for (int i = 0; i < request.Models.Count; i++) Console.Error.WriteLine($"model {i + 1}: {request.Models[i]}");
        MergeSearchResult? search = null;
        var weights = request.Weights;
        if (weights is null)
        {
            int candidates = MergeWeightSearch.Grid(merge.Count, request.WeightStep).Count;
            Console.Error.WriteLine($"searching {candidates} weight vectors (step {Format(request.WeightStep)}) for the best mean {request.Metric} over " +
                string.Join(", ", request.Sets.Select(s => s.Name)) + $"; every model encodes as {merge.First.SpecSource} says");
            search = MergeWeightSearch.Run(merge, request.Sets, request.Metric, request.WeightStep, new InlineProgress<MergeCandidate>(c =>
                Console.Error.WriteLine($"weights {Weights(c.Weights)}: " +
                    string.Join(", ", request.Sets.Select((s, i) => $"{s.Name} {c.Metrics[i][request.Metric]:F4}")) + $", mean {c.Mean:F4}")));
            PrintSearch(search, request.Models.Count);
            weights = search.Best.Weights;
        }
        merge.Apply(weights);
        merge.Save(request.OutputDir, weights, search?.ToJson());
        AnsiConsole.MarkupLine($"merged {request.Models.Count} models with weights {Markup.Escape(Weights(weights))} into [blue]{Markup.Escape(request.OutputDir)}[/] " +
            $"(encoder spec from {Markup.Escape(merge.First.SpecSource)}; {ModelMerge.RecordFile} records the inputs{(search is null ? "" : " and the search")})");
        return search;
    }

    /// <summary>Numbers, or null for "auto".</summary>
    private static double[]? ParseWeights(IReadOnlyList<string> given)
    {
        if (given is ["auto"]) return null;
        return given.Select(text => double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value)
            ? value
            : throw new EmbedderException($"--weights: '{text}' is not a number (give one number per model, or auto)")).ToArray();
    }

    /// <summary>The search as a table: one row per weight vector (the input models alone named), the chosen one marked.</summary>
    private static void PrintSearch(MergeSearchResult search, int modelCount)
    {
        var table = new Table().AddColumn("weights");
        foreach (var set in search.Sets) table.AddColumn(new TableColumn(Markup.Escape($"{set.Name} {search.Metric}")).RightAligned());
        table.AddColumn(new TableColumn("mean").RightAligned());
        for (int i = 0; i < search.Candidates.Count; i++)
        {
            var candidate = search.Candidates[i];
            int alone = Enumerable.Range(0, modelCount).FirstOrDefault(m => candidate.Weights[m] == 1, -1);
            var label = Weights(candidate.Weights) + (alone >= 0 ? $" (model {alone + 1})" : "") + (i == search.BestIndex ? " *" : "");
            table.AddRow([Markup.Escape(label), .. candidate.Metrics.Select(m => $"{m[search.Metric]:F4}"), $"{candidate.Mean:F4}"]);
        }
        AnsiConsole.Write(table);
    }

    private static string Weights(IReadOnlyList<double> weights) => string.Join(" ", weights.Select(Format));

    private static string Format(double value) => ModelMerge.Format(value);
}
