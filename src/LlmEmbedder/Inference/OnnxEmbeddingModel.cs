using LlmEmbedder.Checkpoints.Export;
using LlmEmbedder.Modeling;
using LlmEmbedder.Tokenization;
using Microsoft.ML.OnnxRuntime;

namespace LlmEmbedder.Inference;

/// <summary>
/// An exported encoder run by ONNX Runtime: our tokenizer, then the graph's sentence_embedding output, which already
/// pools, projects and normalises as the export's encoder spec said. No libtorch is involved.
/// </summary>
public sealed class OnnxEmbeddingModel : IEmbeddingModel
{
    /// <summary>Where export --onnx writes the fp32 graph in a model folder (sentence-transformers' layout).</summary>
    public const string DefaultFile = "onnx/model.onnx";

    /// <summary>The int8 graph of export --quantize int8, named for the CPU feature its kernels use, as sentence-transformers names it.</summary>
    public const string Int8File = "onnx/model_qint8_avx512_vnni.onnx";

    private static readonly string[] InputNames = [OnnxEncoderGraph.InputIds, OnnxEncoderGraph.AttentionMask, OnnxEncoderGraph.TokenTypeIds];

    private readonly InferenceSession session;
    private readonly string[] outputNames;

    public BertTokenizer Tokenizer { get; }
    public EncoderSpec Spec { get; }
    public int Dimension { get; }

    /// <summary>The .onnx file this model runs.</summary>
    public string Path { get; }

    private OnnxEmbeddingModel(InferenceSession session, BertTokenizer tokenizer, EncoderSpec spec, int dimension, string path, bool lastHiddenState)
    {
        this.session = session;
        Tokenizer = tokenizer;
        Spec = spec;
        Dimension = dimension;
        Path = path;
        outputNames = lastHiddenState ? [OnnxEncoderGraph.SentenceEmbedding, OnnxEncoderGraph.LastHiddenState] : [OnnxEncoderGraph.SentenceEmbedding];
    }

    /// <summary>
    /// Opens <paramref name="onnxFile"/> (relative to <paramref name="encoderDir"/>) to encode as <paramref name="spec"/>
    /// says. The graph computes pooling, the dense pooler and normalisation itself, so a spec that asks for others
    /// than the export baked in is refused; instructions and max lengths are the tokenizer's and may differ.
    /// </summary>
    /// <param name="threads">ONNX Runtime's intra-op threads; 0: its default (one per physical core).</param>
    public static OnnxEmbeddingModel Load(string encoderDir, EncoderSpec spec, string onnxFile = DefaultFile, int threads = 0, bool lastHiddenState = false)
    {
        var path = System.IO.Path.IsPathRooted(onnxFile) ? onnxFile : System.IO.Path.Combine(encoderDir, onnxFile);
        if (!File.Exists(path))
            throw new EmbedderException(onnxFile == DefaultFile
                ? $"{encoderDir}: has no ONNX export ({DefaultFile} not found); write one with `llm-embedder export --encoder {encoderDir} --output_dir DIR --onnx`, or use --backend torch"
                : $"{path}: ONNX file not found");
        var tokenizer = BertTokenizer.FromDirectory(encoderDir);
        using var options = new SessionOptions
        {
            IntraOpNumThreads = threads,
            InterOpNumThreads = 1,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(path, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new EmbedderException($"{path}: ONNX Runtime cannot load it: {e.Message}", e);
        }
        try
        {
            var dimension = Check(session, spec, path);
            return new OnnxEmbeddingModel(session, tokenizer, spec, dimension, path, lastHiddenState);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    /// <summary>Checks the graph's inputs and outputs, and that it computes what the spec asks; returns the embedding length.</summary>
    private static int Check(InferenceSession session, EncoderSpec spec, string path)
    {
        var missing = InputNames.Where(name => !session.InputMetadata.ContainsKey(name)).ToList();
        if (missing.Count > 0 || !session.OutputMetadata.TryGetValue(OnnxEncoderGraph.SentenceEmbedding, out var output))
            throw new EmbedderException($"{path}: not an llm-embedder export: expected inputs {string.Join(", ", InputNames)} and output " +
                $"{OnnxEncoderGraph.SentenceEmbedding}, found inputs [{string.Join(", ", session.InputMetadata.Keys)}] and outputs [{string.Join(", ", session.OutputMetadata.Keys)}]; " +
                "export the model with `llm-embedder export --onnx`");
        if (output.Dimensions is not [_, > 0 and var dimension])
            throw new EmbedderException($"{path}: {OnnxEncoderGraph.SentenceEmbedding} has shape [{string.Join(", ", output.Dimensions)}], expected [batch, dimension]");
        var baked = OnnxEncoderGraph.Description.Parse(session.ModelMetadata.CustomMetadataMap.GetValueOrDefault(OnnxEncoderGraph.MetadataKey), path)
            ?? throw new EmbedderException($"{path}: has no {OnnxEncoderGraph.MetadataKey} metadata; export the model with `llm-embedder export --onnx`");
        var conflicts = new List<string>();
        if (baked.Pooling != spec.Pooling) conflicts.Add($"{baked.Pooling.Name()} pooling, not {spec.Pooling.Name()}");
        if (baked.Dense != spec.Dense) conflicts.Add(baked.Dense ? "a dense pooler the spec does not have" : "no dense pooler, the spec has one");
        if (baked.Normalize != spec.Normalize) conflicts.Add(baked.Normalize ? "L2-normalised vectors" : "vectors that are not normalised");
        if (conflicts.Count > 0)
            throw new EmbedderException($"{path}: the ONNX graph computes {string.Join(", ", conflicts)}; re-export with those settings, or use --backend torch");
        return (int)dimension;
    }

    public float[] Embed(TokenBatch batch) => Run(batch).SentenceEmbedding;

    /// <summary>sentence_embedding [batch × Dimension], and last_hidden_state [batch × sequence × hidden] when the model was loaded to return it.</summary>
    public (float[] SentenceEmbedding, float[]? LastHiddenState) Run(TokenBatch batch)
    {
        long[] shape = [batch.BatchSize, batch.SequenceLength];
        using var ids = OrtValue.CreateTensorValueFromMemory(batch.InputIds, shape);
        using var mask = OrtValue.CreateTensorValueFromMemory(batch.AttentionMask, shape);
        // Single segments: token type 0 everywhere, as the tokenizer and BertModel use.
        using var types = OrtValue.CreateTensorValueFromMemory(new long[batch.InputIds.Length], shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, InputNames, [ids, mask, types], outputNames);
        var embeddings = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        if (embeddings.Length != (long)batch.BatchSize * Dimension)
            throw new EmbedderException($"{Path}: {OnnxEncoderGraph.SentenceEmbedding} returned {embeddings.Length} values for {batch.BatchSize} rows of {Dimension}");
        return (embeddings, outputs.Count > 1 ? outputs[1].GetTensorDataAsSpan<float>().ToArray() : null);
    }

    public void Dispose() => session.Dispose();
}
