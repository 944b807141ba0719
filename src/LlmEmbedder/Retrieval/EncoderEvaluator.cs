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
        var evalData = TrainingJsonl.ResolveTrainData([args.EvalData], args.DataRoot)[0];
        var corpus = args.Corpus is null ? null : TrainingJsonl.ResolveTrainData([args.Corpus], args.DataRoot)[0];
        var dataset = RetrievalDataset.Load(evalData, corpus, keyTemplate: args.KeyTemplate);
        Instruction? instruction = null;
        if (args.AddInstruction && FirstRowTask(evalData) is { } task)
        {
            var instructions = args.InstructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(args.InstructionFile);
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

    private static string? FirstRowTask(string evalData)
    {
        if (Directory.Exists(evalData)) return null;
        using var reader = new StreamReader(evalData);
        var first = reader.ReadLine();
        if (string.IsNullOrWhiteSpace(first)) return null;
        using var row = JsonDocument.Parse(first);
        return row.RootElement.TryGetProperty("task", out var task) && task.ValueKind == JsonValueKind.String ? task.GetString() : null;
    }
}
