using System.CommandLine;
using LlmEmbedder.Data;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>How eval and merge read a retrieval set and what they measure on it: one definition, one help text.</summary>
internal sealed class RetrievalSetOptions
{
    public Option<string> DataRoot { get; } = new("--data_root")
    {
        Description = "Folder that llm-embedder: paths are relative to", DefaultValueFactory = _ => TrainingJsonl.DefaultDataRoot,
    };

    public Option<string> KeyTemplate { get; } = new("--key_template") { Description = "How corpus fields form a key", DefaultValueFactory = _ => Retrieval.KeyTemplate.Default };

    public Option<string[]> Metrics { get; } = new("--metrics")
    {
        Description = "mrr, recall, ndcg", DefaultValueFactory = _ => [.. RetrievalMetrics.DefaultMetrics], AllowMultipleArgumentsPerToken = true,
    };

    public Option<int[]> Cutoffs { get; } = new Option<int[]>("--cutoffs")
    {
        Description = "Metric cutoffs", DefaultValueFactory = _ => [.. RetrievalMetrics.DefaultCutoffs], AllowMultipleArgumentsPerToken = true,
    }.WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.Cutoffs)));
}
