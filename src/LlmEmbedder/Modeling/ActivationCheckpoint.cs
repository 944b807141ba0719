using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>
/// Activation checkpointing (torch.utils.checkpoint, the reentrant variant Hugging Face's
/// gradient_checkpointing_enable() uses), which TorchSharp 0.107 lacks. The forward runs without building a graph,
/// keeping only its input; backward runs the function again with grad enabled and backpropagates through that
/// recomputation, so peak memory holds one checkpointed block's activations instead of all of them, for about one
/// extra forward of compute. Parameters the function uses get their gradients accumulated during the recomputation,
/// as in PyTorch; they need not be passed in.
/// </summary>
public static class ActivationCheckpoint
{
    /// <summary>
    /// <paramref name="function"/>(<paramref name="input"/>), with its activations recomputed in backward instead of kept.
    /// The function is called a second time in backward, so any tensor it captures must still be alive then (pass such a
    /// tensor as the constant of the other overload instead), and it must be deterministic apart from the default CPU
    /// generator, whose state is saved here and restored around the recomputation so dropout draws the same masks
    /// (preserve_rng_state). Without grad, or when the input needs no gradient, it just calls the function: there the
    /// reentrant trick would lose the parameters' gradients.
    /// </summary>
    public static Tensor Run(Func<Tensor, Tensor> function, Tensor input)
    {
        if (!is_grad_enabled() || !input.requires_grad) return function(input);
        return RecomputeInBackward.apply(input, new Recomputation((x, _) => function(x), GeneratorReplay.Capture()));
    }

    /// <summary>
    /// <paramref name="function"/>(<paramref name="input"/>, <paramref name="constant"/>) checkpointed as above, where the
    /// constant (an attention mask) needs no gradient. Autograd keeps the constant for the recomputation, as it keeps the
    /// input, so the caller may release its own handles once the forward is done.
    /// </summary>
    public static Tensor Run(Func<Tensor, Tensor, Tensor> function, Tensor input, Tensor constant)
    {
        // apply's arguments fix how many gradients backward returns; a null here would change that count.
        ArgumentNullException.ThrowIfNull(constant);
        if (!is_grad_enabled() || !input.requires_grad) return function(input, constant);
        return RecomputeInBackward.apply(input, constant, new Recomputation((x, c) => function(x, c!), GeneratorReplay.Capture()));
    }

    /// <summary>What backward needs besides the saved input. Kept as managed data: a tensor here would outlive the scope
    /// that created it, or die in it before backward.</summary>
    private sealed record Recomputation(Func<Tensor, Tensor?, Tensor> Function, byte[] RngStateBeforeForward);

    private sealed class RecomputeInBackward : autograd.SingleTensorFunction<RecomputeInBackward>
    {
        private const string RecomputationKey = "recomputation";

        public override string Name => nameof(ActivationCheckpoint);

        // vars: input, [constant,] recomputation. Called by apply with grad disabled: nothing of the function's graph is recorded.
        public override Tensor forward(autograd.AutogradContext ctx, params object[] vars)
        {
            var tensors = vars.OfType<Tensor>().ToList();
            var recomputation = (Recomputation)vars[^1];
            ctx.save_for_backward(tensors);
            ctx.save_data(RecomputationKey, recomputation);
            // The function's intermediates would otherwise stay alive in the caller's scope until it ends.
            using var scope = NewDisposeScope();
            return recomputation.Function(tensors[0], tensors.ElementAtOrDefault(1)).MoveToOuterDisposeScope();
        }

        public override List<Tensor> backward(autograd.AutogradContext ctx, Tensor gradOutput)
        {
            var recomputation = (Recomputation)ctx.get_data(RecomputationKey);
            // The recomputed activations live only until the gradients are out.
            using var scope = NewDisposeScope();
            var saved = ctx.get_saved_variables();
            var input = saved[0].detach().requires_grad_(true);
            var constant = saved.ElementAtOrDefault(1);
            var output = GeneratorReplay.Replay(recomputation.RngStateBeforeForward, () =>
            {
                using (enable_grad()) return recomputation.Function(input, constant);
            });
            autograd.backward([output], [gradOutput]);
            // TorchSharp's wrapper of the incoming gradient would otherwise live in the caller's scope until the step
            // ends, one [batch, seq, hidden] per layer; nothing reads it after this method.
            gradOutput.Dispose();
            var inputGradient = input.grad ?? zeros_like(input);
            // The engine copies the returned tensor after this method returns, so it must outlive this scope.
            // One gradient per argument of apply: the input's, then none for the constant and the recomputation.
            return [inputGradient.MoveToOuterDisposeScope(), .. Enumerable.Repeat<Tensor>(null!, saved.Count)];
        }
    }
}
