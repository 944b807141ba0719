using System.Globalization;
using LlmEmbedder.Modeling;
using static TorchSharp.torch;

namespace LlmEmbedder.Training;

/// <summary>
/// A training process's peak memory, estimated from shapes before the first step, in bytes: the fp32 weights, their
/// gradients, AdamW's two moments, the bf16 compute copy and its gradients, the activations autograd keeps for the
/// texts whose graph is alive at once (the whole micro-batch, or one chunk with gradient caching), and what the
/// runtime takes before any of that. Texts are taken at their max length, so real data with shorter texts stays below it.
/// </summary>
public sealed record MemoryEstimate(long Weights, long Gradients, long OptimizerState, long ComputeCopy, long Activations, long Runtime)
{
    /// <summary>The .NET runtime, libtorch and its thread pools, the tokenizer and the data: about what `train` peaks at with a tiny model.</summary>
    public const long RuntimeBytes = 400L << 20;

    public long Total => Weights + Gradients + OptimizerState + ComputeCopy + Activations + Runtime;

    /// <summary>Texts embedded with their graph alive at the same time: how many, and their length in tokens.</summary>
    public readonly record struct TextsInGraph(int Count, int Length);

    /// <summary>
    /// The texts whose graph is alive at the peak of a step: without caching both sides of the micro-batch (B queries,
    /// B·G keys), with caching the larger chunk of either side.
    /// </summary>
    public static IReadOnlyList<TextsInGraph> Graph(int batch, int group, int queryLength, int keyLength, int? miniBatchSize)
    {
        if (miniBatchSize is not { } chunk) return [new TextsInGraph(batch, queryLength), new TextsInGraph(batch * group, keyLength)];
        var queryChunk = new TextsInGraph(Math.Min(chunk, batch), queryLength);
        var keyChunk = new TextsInGraph(Math.Min(chunk, batch * group), keyLength);
        return [(long)queryChunk.Count * queryChunk.Length > (long)keyChunk.Count * keyChunk.Length ? queryChunk : keyChunk];
    }

    /// <param name="parameters">Trainable weights of every encoder and the pooler.</param>
    /// <param name="graph">The texts whose graph is alive at the peak (<see cref="Graph"/>).</param>
    public static MemoryEstimate For(BertConfig config, long parameters, ScalarType computeDtype, bool gradientCheckpointing, IReadOnlyList<TextsInGraph> graph)
    {
        long element = computeDtype == ScalarType.Float32 ? 4 : 2;
        long computeCopy = computeDtype == ScalarType.Float32 ? 0 : 2 * element * parameters;
        long layers = config.NumHiddenLayers;
        long embeddings = graph.Sum(t => t.Count * EmbeddingBytes(config, t.Length, element));
        long oneLayer = graph.Sum(t => t.Count * LayerBytes(config, t.Length, element));
        long layerInputs = graph.Sum(t => (long)t.Count * t.Length * config.HiddenSize * element);
        // Backward works through one layer at a time, with gradient buffers about the size of that layer's activations;
        // with checkpointing the layer being recomputed holds its activations too.
        long activations = gradientCheckpointing
            ? embeddings + layers * layerInputs + 2 * oneLayer
            : embeddings + (layers + 1) * oneLayer;
        return new MemoryEstimate(4 * parameters, 4 * parameters, 8 * parameters, computeCopy, activations, RuntimeBytes);
    }

    /// <summary>
    /// What one BERT layer keeps for backward per text of <paramref name="length"/> tokens in training (dropout on):
    /// per token, the inputs of its six matmuls and of GELU, both LayerNorms' inputs, the attention's scaled queries and
    /// keys, its values, its probabilities before and after dropout (a row over the text per head), and the dropout masks.
    /// </summary>
    private static long LayerBytes(BertConfig config, int length, long element)
    {
        long hidden = config.HiddenSize, heads = config.NumAttentionHeads, intermediate = config.IntermediateSize;
        long floats = 8 * hidden + 2 * intermediate + 2 * heads * length;
        long maskBytes = heads * length + 2 * hidden;
        return length * (element * floats + maskBytes);
    }

    /// <summary>The embedding block's LayerNorm input and output and its dropout mask.</summary>
    private static long EmbeddingBytes(BertConfig config, int length, long element) =>
        length * (2 * element * config.HiddenSize + config.HiddenSize);

    /// <summary>
    /// Memory this process could still take: Linux's MemAvailable, or what is left under the cgroup's limit when that is
    /// lower; null when neither can be read (not Linux).
    /// </summary>
    public static long? AvailableBytes()
    {
        long? available = null;
        try
        {
            var line = File.ReadLines("/proc/meminfo").FirstOrDefault(l => l.StartsWith("MemAvailable:", StringComparison.Ordinal));
            if (line is not null) available = long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            if (File.Exists("/sys/fs/cgroup/memory.max") && File.ReadAllText("/sys/fs/cgroup/memory.max").Trim() is var max && max != "max")
            {
                long left = long.Parse(max, CultureInfo.InvariantCulture) - long.Parse(File.ReadAllText("/sys/fs/cgroup/memory.current").Trim(), CultureInfo.InvariantCulture);
                available = available is { } a ? Math.Min(a, left) : left;
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return available;
    }

    public static string Gibibytes(long bytes) => (bytes / (double)(1L << 30)).ToString("F2", CultureInfo.InvariantCulture) + " GiB";

    /// <summary>One line: the total and its parts.</summary>
    public string Describe(bool cached) =>
        $"about {Gibibytes(Total)} at peak per process: weights {Gibibytes(Weights)}, gradients {Gibibytes(Gradients)}, AdamW state {Gibibytes(OptimizerState)}" +
        (ComputeCopy > 0 ? $", bf16 copy and its gradients {Gibibytes(ComputeCopy)}" : "") +
        $", activations {Gibibytes(Activations)} ({(cached ? "one chunk" : "the whole batch")}), runtime {Gibibytes(Runtime)}";
}
