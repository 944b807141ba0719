using TorchSharp.Modules;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Optimization;

/// <summary>
/// --max_grad_norm as the Hugging Face Trainer applies it: clip the total L2 norm of the gradients to it when it is
/// &gt; 0, and leave them alone when it is &lt;= 0 (torch's clip_grad_norm_ with 0 would scale every gradient to
/// zero, so nothing would train). Either way the norm is returned for the log.
/// </summary>
public static class GradientClipping
{
    /// <summary>
    /// Clips (when <paramref name="maxNorm"/> &gt; 0) and returns the total norm before clipping: NaN or infinity when the
    /// gradients are not finite, which <see cref="TrainingStep"/> turns into an error before the update.
    /// </summary>
    public static double Clip(IEnumerable<Parameter> parameters, double maxNorm)
    {
        var all = parameters.ToList();
        return maxNorm > 0 ? nn.utils.clip_grad_norm_(all, maxNorm) : TotalNorm(all);
    }

    /// <summary>The L2 norm of all gradients together, as clip_grad_norm_ computes it.</summary>
    public static double TotalNorm(IEnumerable<Parameter> parameters)
    {
        using var scope = NewDisposeScope();
        var norms = parameters.Where(p => p.grad is not null).Select(p => linalg.vector_norm(p.grad!.to(ScalarType.Float64))).ToArray();
        return norms.Length == 0 ? 0 : stack(norms).norm().item<double>();
    }
}
