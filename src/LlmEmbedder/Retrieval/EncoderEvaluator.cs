using System.Text.Json;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Retrieval;

/// <summary>
/// Retrieval evaluation of an encoder pair: embed the queries (with the task's query instruction) and the corpus
/// (with its key instruction), exact search, metrics. The task is the eval file's first row's "task", as in run_dense.py.
/// </summary>
public sealed class EncoderEvaluator : IEncoderEvaluator
{
    private readonly RetrievalDataset dataset;
    private readonly Instruction? instruction;
    private readonly IReadOnlyList<string> metrics;
    private readonly IReadOnlyList<int> cutoffs;
    private readonly int hits;
    private readonly int batchSize;

    public EncoderEvaluator(RetrievalDataset dataset, Instruction? instruction, IReadOnlyList<string> metrics, IReadOnlyList<int> cutoffs, int hits, int batchSize)
    {
        this.dataset = dataset;
        this.instruction = instruction;
        this.metrics = metrics;
        this.cutoffs = cutoffs;
        this.hits = hits;
        this.batchSize = batchSize;
    }

    /// <summary>The evaluator --eval_data/--corpus ask for, or null when they are not given.</summary>
    public static EncoderEvaluator? FromArguments(ModelArguments args)
    {
        if (args.EvalData is null) return null;
        var evalData = ResolveDataPath(args.EvalData, args.DataRoot);
        var corpus = args.Corpus is null ? null : ResolveDataPath(args.Corpus, args.DataRoot);
        var encoding = TextEncoding.Parse(args.Encoding);
        var dataset = RetrievalDataset.Load(evalData, corpus, keyTemplate: args.KeyTemplate, encoding: encoding);
        Instruction? instruction = null;
        if (args.AddInstruction && FirstRowTask(evalData, encoding) is { } task)
        {
            var instructions = args.InstructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(args.InstructionFile, encoding);
            instruction = instructions.Get(args.Version).InstructionFor(task);
        }
        return new EncoderEvaluator(dataset, instruction, args.Metrics, args.Cutoffs, args.Hits, args.BatchSize);
    }

    public IReadOnlyDictionary<string, double> Evaluate(SentenceEncoder queryEncoder, SentenceEncoder keyEncoder)
    {
        var queries = dataset.QueryTexts.Select(q => instruction is null ? q : instruction.ApplyToQuery(q)).ToList();
        var keys = dataset.CorpusTexts.Select(k => instruction is null ? k : instruction.ApplyToKey(k)).ToList();
        var queryEmbeddings = queryEncoder.Encode(queries, batchSize);
        var keyEmbeddings = keyEncoder.Encode(keys, batchSize);
        return RetrievalEvaluation.Run(dataset, queryEmbeddings, keyEmbeddings, queryEncoder.Dimension, hits, metrics, cutoffs).Metrics.Values;
    }

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
