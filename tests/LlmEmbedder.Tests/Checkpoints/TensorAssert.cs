using static TorchSharp.torch;

namespace LlmEmbedder.Tests.Checkpoints;

internal static class TensorAssert
{
    /// <summary>Same dtype, same shape, every element equal (TorchSharp's Tensor.equal is element-wise, not this).</summary>
    public static void Identical(Tensor expected, Tensor actual, string what)
    {
        Assert.True(expected.dtype == actual.dtype, $"{what}: dtype {actual.dtype}, expected {expected.dtype}");
        Assert.True(expected.shape.SequenceEqual(actual.shape),
            $"{what}: shape [{string.Join(", ", actual.shape)}], expected [{string.Join(", ", expected.shape)}]");
        using var scope = NewDisposeScope();
        Assert.True(expected.cpu().eq(actual.cpu()).all().item<bool>(), $"{what}: values differ");
    }
}
