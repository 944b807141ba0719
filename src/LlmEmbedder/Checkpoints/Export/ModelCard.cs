using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>Which instruction the prompts are: <c>--task</c> is any task name when the version has one instruction for all.</summary>
public sealed record PromptSource(string Version, string Task, string? InstructionFile);

/// <summary>
/// README.md of an exported model: Hugging Face model-card front matter, the pipeline, how it was trained
/// (from args.json), how it scored (from a metrics.json), and how to use it from Python and from .NET.
/// </summary>
public sealed record ModelCard(
    string Name,
    BertConfig Config,
    PoolingMethod Pooling,
    int? DenseOutFeatures,
    bool Normalize,
    string SimilarityFunction,
    int MaxSeqLength,
    Instruction Prompts,
    PromptSource? PromptSource,
    TrainingRunInfo? Run,
    IReadOnlyList<(string Name, double Value)>? Metrics)
{
    /// <summary>The numeric top-level entries of a metrics JSON object, in file order.</summary>
    public static IReadOnlyList<(string Name, double Value)> ReadMetrics(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: metrics file not found");
        JsonObject json;
        try
        {
            json = JsonNode.Parse(File.ReadAllText(path)) as JsonObject
                ?? throw new EmbedderException($"{path}: expected a JSON object of metrics, like {{\"ndcg@10\": 0.71}}");
        }
        catch (JsonException e)
        {
            throw new EmbedderException($"{path}: not valid JSON ({e.Message})");
        }
        var metrics = json
            .Where(entry => entry.Value is JsonValue value && value.GetValueKind() == JsonValueKind.Number)
            .Select(entry => (entry.Key, entry.Value!.GetValue<double>()))
            .ToArray();
        return metrics.Length > 0 ? metrics : throw new EmbedderException($"{path}: no numeric metrics in it");
    }

    public string Render()
    {
        var text = new StringBuilder();
        RenderFrontMatter(text);
        text.Append(CultureInfo.InvariantCulture, $"# {Name}\n\n");
        text.Append("A sentence-embedding model");
        if (Run?.BaseModel is { } baseModel) text.Append(CultureInfo.InvariantCulture, $" fine-tuned from `{baseModel}`");
        text.Append(" with LlmEmbedder.NET (the LLM-Embedder / BGE contrastive recipe), in the sentence-transformers layout. ");
        text.Append(CultureInfo.InvariantCulture, $"It maps a text to a {DenseOutFeatures ?? Config.HiddenSize}-dimensional vector; compare vectors with {SimilarityDescription}.\n\n");

        RenderPipeline(text);
        RenderTraining(text);
        RenderMetrics(text);
        RenderUsage(text);
        return text.ToString();
    }

    private string SimilarityDescription => SimilarityFunction switch
    {
        "cosine" => "cosine similarity (the vectors are L2-normalised, so a dot product gives the same)",
        "dot" => "the dot product",
        _ => "Euclidean distance",
    };

    private void RenderFrontMatter(StringBuilder text)
    {
        text.Append("---\nlibrary_name: sentence-transformers\npipeline_tag: sentence-similarity\n");
        text.Append("tags:\n- sentence-transformers\n- feature-extraction\n- sentence-similarity\n- llm-embedder\n");
        // Only a hub id is a valid base_model; a local path would make the hub reject the card.
        if (Run?.BaseModel is { } baseModel && Hub.HubModelId.TryParse(baseModel, out _) && !Path.IsPathRooted(baseModel))
            text.Append(CultureInfo.InvariantCulture, $"base_model: {baseModel}\n");
        text.Append("---\n\n");
    }

    private void RenderPipeline(StringBuilder text)
    {
        text.Append("## Model\n\n| Module | Setting |\n|---|---|\n");
        text.Append(CultureInfo.InvariantCulture,
            $"| Transformer | BERT, {Config.NumHiddenLayers} layers, hidden {Config.HiddenSize}, {Config.NumAttentionHeads} heads, vocab {Config.VocabSize}; max_seq_length {MaxSeqLength} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Pooling (`1_Pooling`) | {(Pooling == PoolingMethod.Cls ? "[CLS] token" : "mean of tokens")} |\n");
        if (DenseOutFeatures is { } outFeatures)
            text.Append(CultureInfo.InvariantCulture,
                $"| Dense (`2_Dense`) | {Config.HiddenSize} → {outFeatures}, no bias, identity activation (the training run's dense pooler) |\n");
        if (Normalize) text.Append("| Normalize | L2 |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Similarity | {SimilarityFunction} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Query prompt (`query`) | {PromptCell(Prompts.Query)} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Document prompt (`document`) | {PromptCell(Prompts.Key)} |\n\n");
    }

    private static string PromptCell(string prompt) => prompt.Length == 0 ? "none" : $"`{prompt.Replace("|", "\\|", StringComparison.Ordinal)}`";

    private void RenderTraining(StringBuilder text)
    {
        if (Run is null) return;
        text.Append("## Training\n\n");
        if (Run.BaseModel is { } baseModel) text.Append(CultureInfo.InvariantCulture, $"Base model: `{baseModel}`.\n\n");
        if (Run.TrainData.Count > 0)
        {
            text.Append("Data:\n\n");
            foreach (var file in Run.TrainData) text.Append(CultureInfo.InvariantCulture, $"- `{file}`\n");
            text.Append('\n');
        }
        var settings = TrainingRunInfo.Present(Run.ModelArgs, TrainingRunInfo.CardModelArguments)
            .Concat(TrainingRunInfo.Present(Run.TrainingArgs, TrainingRunInfo.CardHyperParameters)).ToList();
        if (settings.Count > 0)
        {
            text.Append("Hyper-parameters (from `args.json`):\n\n| Argument | Value |\n|---|---|\n");
            foreach (var (name, value) in settings) text.Append(CultureInfo.InvariantCulture, $"| `--{name}` | {value} |\n");
            text.Append('\n');
        }
    }

    private void RenderMetrics(StringBuilder text)
    {
        if (Metrics is null) return;
        text.Append("## Evaluation\n\n| Metric | Value |\n|---|---|\n");
        foreach (var (name, value) in Metrics)
        {
            // Counts (queries_evaluated, ...) are whole numbers; scores (name@k) keep four decimals even when 1.
            var shown = !name.Contains('@', StringComparison.Ordinal) && value == Math.Floor(value)
                ? value.ToString("F0", CultureInfo.InvariantCulture)
                : value.ToString("F4", CultureInfo.InvariantCulture);
            text.Append(CultureInfo.InvariantCulture, $"| {name} | {shown} |\n");
        }
        text.Append('\n');
    }

    private void RenderUsage(StringBuilder text)
    {
        text.Append("## Usage\n\n### Python (sentence-transformers ≥ 3.0)\n\n```python\n");
        text.Append("from sentence_transformers import SentenceTransformer\n\n");
        text.Append(CultureInfo.InvariantCulture, $"model = SentenceTransformer(\"path/to/{Name}\")\n");
        text.Append(Prompts.Query.Length > 0
            ? "queries = model.encode([\"query text\"], prompt_name=\"query\")  # prepends the query instruction\n"
            : "queries = model.encode([\"query text\"])\n");
        text.Append(Prompts.Key.Length > 0
            ? "documents = model.encode([\"document text\"], prompt_name=\"document\")\n"
            : "documents = model.encode([\"document text\"])\n");
        text.Append("print(model.similarity(queries, documents))\n```\n\n");
        text.Append("Loading may warn that `pooler.dense.*` weights were newly initialised: harmless, the BERT pooler is not used.\n\n");

        text.Append("### .NET (llm-embedder)\n\n```sh\n");
        var instruction = PromptSource is { } source && (Prompts.Query.Length > 0 || Prompts.Key.Length > 0)
            ? $" --version {source.Version} --task {source.Task}" + (source.InstructionFile is { } file ? $" --instruction_file {file}" : "")
            : "";
        text.Append(CultureInfo.InvariantCulture, $"llm-embedder encode --model path/to/{Name} --input queries.txt --output queries.npy{instruction}{(instruction.Length > 0 ? " --role query" : "")}\n");
        text.Append(CultureInfo.InvariantCulture, $"llm-embedder encode --model path/to/{Name} --input passages.jsonl --output passages.npy{instruction}{(instruction.Length > 0 ? " --role key" : "")}\n");
        text.Append("```\n\n");
        text.Append("`encode` reads the pooling, Dense and normalisation modules from this folder");
        text.Append(Prompts.Query.Length > 0 || Prompts.Key.Length > 0
            ? "; instructions are added by `--version`/`--task` (the prompts above), not read from the folder.\n"
            : ".\n");
    }
}
