using LlmEmbedder.Modeling;

namespace LlmEmbedder.Inference;

/// <summary>What runs a model at inference: TorchSharp (libtorch), or ONNX Runtime over an exported graph.</summary>
public enum BackendKind
{
    Torch,
    Onnx,
}

/// <summary>
/// The backend a command encodes with: the one choice encode, eval, mine and serve share (--backend, --onnx_file).
/// <paramref name="OnnxFile"/> is relative to each encoder folder (or absolute), used by the ONNX backend only.
/// </summary>
public sealed record InferenceBackend(BackendKind Kind, string OnnxFile = OnnxEmbeddingModel.DefaultFile)
{
    public static InferenceBackend Torch { get; } = new(BackendKind.Torch);

    public static IReadOnlyList<string> Names { get; } = ["torch", "onnx"];

    public static BackendKind Parse(string name) => name switch
    {
        "torch" => BackendKind.Torch,
        "onnx" => BackendKind.Onnx,
        _ => throw new EmbedderException($"unknown backend '{name}' (expected {string.Join(" or ", Names)})"),
    };

    public string Name => Kind == BackendKind.Torch ? "torch" : "onnx";

    /// <summary>The model of one encoder folder, as <paramref name="spec"/> says.</summary>
    public IEmbeddingModel Load(string encoderDir, EncoderSpec spec) => Kind == BackendKind.Torch
        ? SentenceEncoder.Load(encoderDir, spec)
        : OnnxEmbeddingModel.Load(encoderDir, spec, OnnxFile);
}
