using static TorchSharp.torch;

namespace LlmEmbedder.Modeling;

/// <summary>
/// The default CPU generator's state, captured before a computation that draws from it (dropout) so that running the
/// computation again draws the same numbers: how activation checkpointing and gradient caching recompute a forward
/// with the masks of the first one (PyTorch's preserve_rng_state, sentence-transformers' RandContext). Kept as bytes:
/// a tensor would belong to whichever dispose scope was open when it was captured.
/// </summary>
internal static class GeneratorReplay
{
    public static byte[] Capture()
    {
        using var state = random.get_rng_state();
        return state.data<byte>().ToArray();
    }

    /// <summary>
    /// <paramref name="computation"/> with the generator set to <paramref name="state"/>; afterwards the generator is
    /// where it was before the call, so a replay does not change what later draws see.
    /// </summary>
    public static T Replay<T>(byte[] state, Func<T> computation)
    {
        using var position = random.get_rng_state();
        using (var replayed = tensor(state)) random.set_rng_state(replayed);
        try
        {
            return computation();
        }
        finally
        {
            random.set_rng_state(position);
        }
    }

    public static void Replay(byte[] state, Action computation) => Replay(state, () =>
    {
        computation();
        return 0;
    });
}
