using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>How token vectors become one sentence vector (sentence-transformers' Pooling module).</summary>
public enum PoolingMethod
{
    /// <summary>The [CLS] token's vector (BGE, LLM-Embedder).</summary>
    Cls,

    /// <summary>The mean of the non-padding tokens' vectors (MiniLM, E5).</summary>
    Mean,
}

public static class Pooling
{
    public static PoolingMethod Parse(string name) => name.ToLowerInvariant() switch
    {
        "cls" => PoolingMethod.Cls,
        "mean" => PoolingMethod.Mean,
        _ => throw new EmbedderException($"unknown pooling method '{name}' (expected cls or mean)"),
    };

    public static string Name(this PoolingMethod method) => method.ToString().ToLowerInvariant();

    /// <param name="hidden">last_hidden_state [batch, seq, hidden]</param>
    /// <param name="attentionMask">[batch, seq], 1 for real tokens</param>
    public static Tensor Apply(Tensor hidden, Tensor attentionMask, PoolingMethod method)
    {
        if (method == PoolingMethod.Cls) return hidden.select(1, 0);
        var mask = attentionMask.to(hidden.dtype).unsqueeze(-1);
        return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9);
    }
}
