using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LlmEmbedder.Data;
using LlmEmbedder.Modeling;
using LlmEmbedder.Training;

namespace LlmEmbedder.Checkpoints.Export;

/// <summary>
/// README.md of an exported model: Hugging Face model-card front matter, the pipeline, how it was trained
/// (from args.json), how it scored (from a metrics.json), and how to use it from Python and from .NET.
/// </summary>
/// <param name="Prompts">The "query"/"document" prompts, when the export has them (one task, or --task).</param>
public sealed record ModelCard(
    string Name,
    BertConfig Config,
    EncoderSpec Spec,
    int? DenseOutFeatures,
    Instruction? Prompts,
    string? Task,
    RunArguments? Run,
    IReadOnlyList<(string Name, double Value)>? Metrics,
    IReadOnlyList<string>? OnnxFiles = null)
{
    /// <summary>The training arguments a model card shows, in this order.</summary>
    private static readonly string[] CardHyperParameters =
    [
        nameof(TrainingArguments.LearningRate), nameof(TrainingArguments.NumTrainEpochs), nameof(TrainingArguments.MaxSteps),
        nameof(TrainingArguments.PerDeviceTrainBatchSize), nameof(TrainingArguments.GradientAccumulationSteps),
        nameof(TrainingArguments.TrainGroupSize), nameof(TrainingArguments.CosTemperature), nameof(TrainingArguments.ContrastiveWeight),
        nameof(TrainingArguments.DistillWeight), nameof(TrainingArguments.StableDistill), nameof(TrainingArguments.TeacherTemperature),
        nameof(TrainingArguments.StudentTemperature), nameof(TrainingArguments.SelectPositive), nameof(TrainingArguments.SelectNegative),
        nameof(TrainingArguments.InbatchSameDataset), nameof(TrainingArguments.NegativeCrossDevice), nameof(TrainingArguments.WarmupRatio),
        nameof(TrainingArguments.WeightDecay), nameof(TrainingArguments.MaxGradNorm), nameof(TrainingArguments.Seed),
    ];

    /// <summary>Model arguments that describe the encoder and its data, shown with the hyper-parameters.</summary>
    private static readonly string[] CardModelArguments =
    [
        nameof(ModelArguments.Version), nameof(ModelArguments.AddInstruction), nameof(ModelArguments.QueryMaxLength),
        nameof(ModelArguments.KeyMaxLength), nameof(ModelArguments.PoolingMethod), nameof(ModelArguments.DenseMetric), nameof(ModelArguments.Dtype),
    ];

    private string SimilarityFunction => Spec.Metric.SimilarityFunctionName();
    private int MaxSeqLength => Math.Max(Spec.QueryMaxLength, Spec.KeyMaxLength);

    /// <summary>The numeric top-level entries of a metrics JSON object, in file order.</summary>
    public static IReadOnlyList<(string Name, double Value)> ReadMetrics(string path)
    {
        if (!File.Exists(path)) throw new EmbedderException($"{path}: metrics file not found");
        var metrics = JsonFile.ReadObject(path)
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
        if (Run?.Model.QueryEncoder is { } baseModel) text.Append(CultureInfo.InvariantCulture, $" fine-tuned from `{baseModel}`");
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
        if (Run?.Model.QueryEncoder is { } baseModel && Hub.HubModelId.TryParse(baseModel, out _) && !Path.IsPathRooted(baseModel))
            text.Append(CultureInfo.InvariantCulture, $"base_model: {baseModel}\n");
        text.Append("---\n\n");
    }

    private void RenderPipeline(StringBuilder text)
    {
        text.Append("## Model\n\n| Module | Setting |\n|---|---|\n");
        text.Append(CultureInfo.InvariantCulture,
            $"| Transformer | BERT, {Config.NumHiddenLayers} layers, hidden {Config.HiddenSize}, {Config.NumAttentionHeads} heads, vocab {Config.VocabSize}; max_seq_length {MaxSeqLength} |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Pooling (`1_Pooling`) | {(Spec.Pooling == PoolingMethod.Cls ? "[CLS] token" : "mean of tokens")} |\n");
        if (DenseOutFeatures is { } outFeatures)
            text.Append(CultureInfo.InvariantCulture,
                $"| Dense (`2_Dense`) | {Config.HiddenSize} → {outFeatures}, no bias, identity activation (the training run's dense pooler) |\n");
        if (Spec.Normalize) text.Append("| Normalize | L2 |\n");
        text.Append(CultureInfo.InvariantCulture, $"| Similarity | {SimilarityFunction} |\n");
        if (Prompts is { } prompts)
        {
            text.Append(CultureInfo.InvariantCulture, $"| Query prompt (`query`) | {PromptCell(prompts.Query)} |\n");
            text.Append(CultureInfo.InvariantCulture, $"| Document prompt (`document`) | {PromptCell(prompts.Key)} |\n");
        }
        text.Append('\n');
        var tasks = Spec.Instructions.Tasks.Where(t => t.Key != EncoderInstructions.AnyTask).ToList();
        if (tasks.Count == 0) return;
        text.Append(CultureInfo.InvariantCulture, $"Instructions per task (version `{Spec.Instructions.Version ?? "?"}`), as prompts `{{task}}_query` and `{{task}}_key`:\n\n");
        text.Append("| Task | Query prompt | Key prompt |\n|---|---|---|\n");
        foreach (var (task, instruction) in tasks)
            text.Append(CultureInfo.InvariantCulture, $"| {task} | {PromptCell(instruction.Query)} | {PromptCell(instruction.Key)} |\n");
        text.Append('\n');
    }

    private static string PromptCell(string prompt) => prompt.Length == 0 ? "none" : $"`{prompt.Replace("|", "\\|", StringComparison.Ordinal)}`";

    private void RenderTraining(StringBuilder text)
    {
        if (Run is null) return;
        text.Append("## Training\n\n");
        text.Append(CultureInfo.InvariantCulture, $"Base model: `{Run.Model.QueryEncoder}`.\n\n");
        if (Run.Model.TrainData.Length > 0)
        {
            text.Append("Data:\n\n");
            foreach (var file in Run.Model.TrainData) text.Append(CultureInfo.InvariantCulture, $"- `{file}`\n");
            text.Append('\n');
        }
        var settings = RunArguments.Describe(Run.Model, CardModelArguments)
            .Concat(RunArguments.Describe(Run.Training, CardHyperParameters)).ToList();
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
        // With one prompt pair ("query"/"document") the example uses it; otherwise the first task's named prompts.
        var exampleTask = Prompts is null ? Spec.Instructions.Tasks.Keys.FirstOrDefault(t => t != EncoderInstructions.AnyTask) : null;
        var example = Prompts ?? (exampleTask is null ? null : Spec.Instructions.For(exampleTask));
        var queryPrompt = Prompts is not null ? "query" : $"{exampleTask}_query";
        var keyPrompt = Prompts is not null ? "document" : $"{exampleTask}_key";
        text.Append("## Usage\n\n### Python (sentence-transformers ≥ 3.0)\n\n```python\n");
        text.Append("from sentence_transformers import SentenceTransformer\n\n");
        text.Append(CultureInfo.InvariantCulture, $"model = SentenceTransformer(\"path/to/{Name}\")\n");
        text.Append(example is { Query.Length: > 0 }
            ? $"queries = model.encode([\"query text\"], prompt_name=\"{queryPrompt}\")  # prepends the query instruction\n"
            : "queries = model.encode([\"query text\"])\n");
        text.Append(example is { Key.Length: > 0 }
            ? $"documents = model.encode([\"document text\"], prompt_name=\"{keyPrompt}\")\n"
            : "documents = model.encode([\"document text\"])\n");
        text.Append("print(model.similarity(queries, documents))\n```\n\n");
        text.Append("Loading may warn that `pooler.dense.*` weights were newly initialised: harmless, the BERT pooler is not used.\n\n");

        text.Append("### .NET (llm-embedder)\n\n```sh\n");
        var task = Prompts is null && exampleTask is not null ? $" --task {exampleTask}" : "";
        text.Append(CultureInfo.InvariantCulture, $"llm-embedder encode --model path/to/{Name} --input queries.txt --output queries.npy{task} --role query\n");
        text.Append(CultureInfo.InvariantCulture, $"llm-embedder encode --model path/to/{Name} --input passages.jsonl --output passages.npy{task} --role key\n");
        text.Append("```\n\n");
        text.Append("`encode` reads how to use the model from this folder (`encoder_spec.json`): pooling, Dense, normalisation, max lengths ");
        text.Append("and the instruction of the task and role.\n");
        if (OnnxFiles is not { Count: > 0 }) return;

        text.Append("\n### ONNX Runtime\n\n");
        text.Append(CultureInfo.InvariantCulture, $"{string.Join(", ", OnnxFiles.Select(f => $"`{f}`"))}: inputs `input_ids`, `attention_mask`, `token_type_ids` ");
        text.Append("(int64 [batch, sequence]); outputs `last_hidden_state` and `sentence_embedding` (pooling, Dense and normalisation applied, as `encode` gives). ");
        text.Append(CultureInfo.InvariantCulture, $"`SentenceTransformer(\"path/to/{Name}\", backend=\"onnx\")` loads the fp32 graph; `llm-embedder encode --backend onnx` runs it without libtorch.\n");
    }
}
