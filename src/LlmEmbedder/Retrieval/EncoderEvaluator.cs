using System.Text.Json;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Retrieval;

/// <summary>
/// Training's own retrieval evaluation (before, during and after training): the same <see cref="ModelEvaluation"/>
/// the eval command runs, on the encoders being trained, with the instruction their spec gives for the eval file's
/// task (its first row's "task", as in run_dense.py), so `eval --model output_dir` prints the same numbers.
/// </summary>
public sealed class EncoderEvaluator : IEncoderEvaluator
{
    private readonly RetrievalDataset dataset;
    private readonly string? task;
    private readonly EvaluationSettings settings;

    public EncoderEvaluator(RetrievalDataset dataset, string? task, EvaluationSettings settings)
    {
        settings.Validate();
        this.dataset = dataset;
        this.task = task;
        this.settings = settings;
    }

    /// <summary>The evaluator --eval_data/--corpus ask for, or null when they are not given.</summary>
    public static EncoderEvaluator? FromArguments(ModelArguments args)
    {
        if (args.EvalData is null) return null;
        return Load(args.EvalData, args.Corpus, args.DataRoot, TextEncoding.Parse(args.Encoding),
            new EvaluationSettings(null, args.KeyTemplate, args.Metrics, args.Cutoffs, args.Hits, args.BatchSize));
    }

    /// <summary>
    /// An eval file (or BEIR folder) and its corpus, resolved against <paramref name="dataRoot"/> as --eval_data and
    /// --corpus are; its first row's task chooses the instruction.
    /// </summary>
    public static EncoderEvaluator Load(string evalData, string? corpus, string dataRoot, TextEncoding encoding, EvaluationSettings settings)
    {
        var evalPath = ResolveDataPath(evalData, dataRoot);
        var corpusPath = corpus is null ? null : ResolveDataPath(corpus, dataRoot);
        var dataset = RetrievalDataset.Load(evalPath, corpusPath, keyTemplate: settings.KeyTemplate, encoding: encoding);
        return new EncoderEvaluator(dataset, FirstRowTask(evalPath, encoding), settings);
    }

    /// <summary>Fails now, not after training, when the spec has no instruction for the eval data's task.</summary>
    public void CheckInstruction(EncoderSpec spec) => InstructionFor(spec);

    public IReadOnlyDictionary<string, double> Evaluate(SentenceEncoder queryEncoder, SentenceEncoder keyEncoder)
    {
        using var encoder = new CachingEncoder(queryEncoder, keyEncoder);
        var withInstruction = settings with { Instruction = InstructionFor(queryEncoder.Spec) };
        return ModelEvaluation.Run(encoder, dataset, withInstruction).Evaluation.Metrics.Values;
    }

    private Instruction InstructionFor(EncoderSpec spec) => spec.Instructions.For(task, "the eval data's task");

    /// <summary>A BEIR folder (the llm-embedder: prefix applied), else one file as --train_data resolves it.</summary>
    public static string ResolveDataPath(string entry, string dataRoot)
    {
        var prefix = TrainingJsonl.DataRootPrefix;
        var folder = entry.StartsWith(prefix, StringComparison.Ordinal) ? Path.Combine(dataRoot, entry[prefix.Length..]) : entry;
        if (Directory.Exists(folder)) return folder;
        if (!File.Exists(folder) && folder.IndexOfAny(['*', '?']) < 0)
            throw new EmbedderException($"{folder}: file or folder not found" + (ReferenceEquals(folder, entry) ? "" : $" (from {entry} with --data_root {dataRoot})"));
        var files = TrainingJsonl.ResolveTrainData([entry], dataRoot);
        return files.Count == 1 ? files[0] : throw new EmbedderException($"{entry}: matches {files.Count} files; give one eval file");
    }

    /// <summary>The "task" of an eval file's first row (it selects the instruction, as in run_dense.py); null for a folder or none.</summary>
    public static string? FirstRowTask(string evalData, TextEncoding? encoding = null)
    {
        if (Directory.Exists(evalData)) return null;
        var first = TextFile.ReadLines(evalData, encoding).FirstOrDefault();
        if (string.IsNullOrWhiteSpace(first)) return null;
        try
        {
            using var row = JsonDocument.Parse(first);
            return row.RootElement.ValueKind == JsonValueKind.Object && row.RootElement.TryGetProperty("task", out var task) && task.ValueKind == JsonValueKind.String
                ? task.GetString()
                : null;
        }
        catch (JsonException)
        {
            return null; // the dataset reader reports a malformed line with its file and line
        }
    }
}
