using LlmEmbedder.Modeling;

namespace LlmEmbedder.Inference;

/// <summary>How a <see cref="TextEmbedder"/> loads its model and batches concurrent work.</summary>
public sealed record TextEmbedderOptions
{
    /// <summary>Changes to the model's encoder spec (dtype, pooling, ...); none by default: the model as trained.</summary>
    public EncoderSpecOverrides Overrides { get; init; } = new();

    /// <summary>What runs the model: TorchSharp (default), or ONNX Runtime over the folder's `export --onnx` graph.</summary>
    public InferenceBackend Backend { get; init; } = InferenceBackend.Torch;

    /// <summary>Texts in one forward pass at most.</summary>
    [ArgumentRange(1)]
    public int MaxBatchSize { get; init; } = 32;

    /// <summary>
    /// Padded tokens (rows × the longest row) in one forward pass at most, as text-embeddings-inference's
    /// max-batch-tokens: short texts batch wide, long ones narrow, and memory stays bounded. A single text longer
    /// than the budget still runs, alone.
    /// </summary>
    [ArgumentRange(2)]
    public int MaxBatchTokens { get; init; } = 16384;

    /// <summary>
    /// Calls waiting for the model at most (a call stops waiting once all its texts are in a batch); one more gets
    /// <see cref="QueueFullException"/>. Batches merge waiting calls, so a queue shorter than
    /// <see cref="MaxBatchSize"/> also caps how many one-text calls a forward pass can merge.
    /// </summary>
    [ArgumentRange(1)]
    public int MaxQueue { get; init; } = 512;

    /// <summary>
    /// Whether a text longer than the role's max length is truncated (as encode and sentence-transformers do) or
    /// refused with <see cref="InputTooLongException"/> (as the OpenAI API does).
    /// </summary>
    public bool Truncate { get; init; } = true;

    /// <summary>Rejects values out of their declared ranges.</summary>
    public TextEmbedderOptions Validated()
    {
        ArgumentRanges.Validate(this);
        return this;
    }
}
