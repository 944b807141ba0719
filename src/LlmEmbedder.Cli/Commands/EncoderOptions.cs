using System.CommandLine;
using LlmEmbedder.Checkpoints;
using LlmEmbedder.Data;
using LlmEmbedder.Inference;
using LlmEmbedder.Modeling;
using LlmEmbedder.Retrieval;
using LlmEmbedder.Training;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// The options that say how a model turns text into vectors, shared by encode, eval and mine so their names,
/// choices and help cannot drift. Each defaults to the model's encoder spec; a flag that changes it is reported.
/// Also --encoding, how those commands decode every text they read (the --instruction_file too).
/// </summary>
internal sealed class EncoderOptions
{
    /// <summary>--model, not added by <see cref="AddTo"/>: each command lists it first, so it leads the help.</summary>
    public Option<string> Model { get; } = new("--model") { Description = ModelArgument.Description, Required = true };

    /// <summary>--dimensions (encode and eval): not added by <see cref="AddTo"/>, as mine has no use for it.</summary>
    public Option<int?> Dimensions { get; } = new Option<int?>("--dimensions")
    {
        Description = "Keep the first N dimensions of each embedding (L2-normalised again when the model normalises), as the OpenAI API's " +
                      "dimensions; a model trained with --matryoshka_dims is made for it. Default: all",
    }.WithRange(new ArgumentRangeAttribute(1) { MaxDescription = "the model's embedding size" });

    private readonly Option<string?> pooling = new("--pooling_method") { Description = "cls or mean (default: the model's encoder spec)" };
    private readonly Option<string?> metric = new("--dense_metric") { Description = "cos (L2-normalise), ip or l2 (default: the model's encoder spec)" };
    private readonly Option<int?> maxLength;
    private readonly Option<int> batchSize;
    private readonly Option<string?> dtype = new("--dtype")
    {
        Description = "fp32, or bf16 (about 2x faster on CPUs with AVX-512 BF16; embeddings agree with fp32 to about 1e-2). Default: the model's encoder spec (fp32)",
    };
    private readonly Option<string?> version = new("--version") { Description = "Instruction version (bge, e5, llm-embedder, ...); default: the model's" };
    private readonly Option<string?> instructionFile = new("--instruction_file") { Description = "JSON file adding instruction versions" };
    private readonly Option<string?> task;
    private readonly Option<string> backend = new("--backend")
    {
        Description = "torch (TorchSharp) or onnx (ONNX Runtime on the folder's export --onnx graph, no libtorch)",
        DefaultValueFactory = _ => "torch",
    };
    private readonly Option<string?> onnxFile = new("--onnx_file")
    {
        Description = $"With --backend onnx: the graph to run, relative to the model folder (e.g. {OnnxEmbeddingModel.Int8File}); default {OnnxEmbeddingModel.DefaultFile}",
    };
    private readonly TextEncodingOption encoding = new();

    public EncoderOptions(int defaultBatchSize, string taskDescription = "Instruction task; needed when the model has instructions for several tasks")
    {
        pooling.AcceptOnlyFromAmong("cls", "mean");
        metric.AcceptOnlyFromAmong([.. DenseMetrics.Names]);
        dtype.AcceptOnlyFromAmong("fp32", "bf16");
        backend.AcceptOnlyFromAmong([.. InferenceBackend.Names]);
        maxLength = new Option<int?>("--max_length")
        {
            Description = "Truncate to this many tokens (default: the model's query and key max lengths, else 512)",
        }.WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.QueryMaxLength)));
        batchSize = new Option<int>("--batch_size") { Description = "Texts per forward pass", DefaultValueFactory = _ => defaultBatchSize }
            .WithRange(ArgumentRanges.Of<ModelArguments>(nameof(ModelArguments.BatchSize)));
        task = new Option<string?>("--task") { Description = taskDescription };
    }

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { task, version, instructionFile, pooling, metric, maxLength, batchSize, dtype, backend, onnxFile }) command.Add(option);
        encoding.AddTo(command);
        command.AddRule([backend, onnxFile, dtype], result =>
        {
            bool onnx = result.ValueOr(backend, "torch") == "onnx";
            if (!onnx && result.ValueOr(onnxFile, null) is not null)
                throw new EmbedderException("--onnx_file needs --backend onnx");
            if (onnx && result.ValueOr(dtype, null) == "bf16")
                throw new EmbedderException("--dtype bf16 is a TorchSharp setting; with --backend onnx the graph's own precision applies (--onnx_file picks fp32 or int8)");
        });
    }

    /// <summary>--backend and --onnx_file.</summary>
    public InferenceBackend Backend(ParseResult parsed) => InferenceBackend.Parse(parsed.GetRequiredValue(backend)) == BackendKind.Onnx
        ? new InferenceBackend(BackendKind.Onnx, parsed.GetValue(onnxFile) ?? OnnxEmbeddingModel.DefaultFile)
        : InferenceBackend.Torch;

    public TextEncoding Encoding(ParseResult parsed) => encoding.Get(parsed);

    /// <summary>The given flags that only an embedding model reads (a cross-encoder has no pooling, metric or instructions).</summary>
    public IEnumerable<string> EmbedderOnlyFlagsGiven(ParseResult parsed) =>
        new Option[] { task, version, instructionFile, pooling, metric, dtype }.Where(o => parsed.GetResult(o) is { Implicit: false }).Select(o => o.Name);

    public int? MaxLength(ParseResult parsed) => parsed.GetValue(maxLength);

    public int BatchSize(ParseResult parsed) => parsed.GetValue(batchSize);

    public string? Task(ParseResult parsed) => parsed.GetValue(task);

    /// <param name="instructionFileEncoding">--encoding: how an --instruction_file is decoded.</param>
    public EncoderSpecOverrides Overrides(ParseResult parsed, TextEncoding? instructionFileEncoding = null) => new(
        parsed.GetValue(pooling) is { } p ? Pooling.Parse(p) : null,
        parsed.GetValue(metric) is { } m ? DenseMetrics.Parse(m) : null,
        parsed.GetValue(maxLength),
        parsed.GetValue(dtype) is { } d ? EncoderSpec.ParseDtype(d) : null,
        parsed.GetValue(version),
        parsed.GetValue(instructionFile),
        instructionFileEncoding);

    /// <summary>
    /// The model --model names (a folder, run, checkpoint or hub id) with its spec after the flags. The command prints
    /// <see cref="Note"/> once every input is checked, so that a mistake is the only line printed.
    /// </summary>
    public EncoderRequest Request(ParseResult parsed, string modelArgument)
    {
        var model = ModelFolder.Open(ModelArgument.Resolve(modelArgument));
        var spec = model.Override(Overrides(parsed, Encoding(parsed)), out var changes);
        return new EncoderRequest(model, spec, changes, Backend(parsed));
    }

    public static void Note(EncoderRequest request)
    {
        if (request.OverrideNote is { } note) Console.Error.WriteLine($"llm-embedder: note: {note}");
    }
}
