namespace LlmEmbedder.Distributed;

/// <summary>
/// The processes of one training job and the few collectives data-parallel training needs. Every rank must
/// call the same collectives in the same order with the same sizes; a rank that stops calling them leaves the
/// others waiting, which is why a failing rank <see cref="Abort"/>s the whole job.
/// </summary>
/// <remarks>Tensor forms of these calls (flattened gradients, embeddings) are in <see cref="ProcessGroupTensors"/>.</remarks>
public interface IProcessGroup : IDisposable
{
    /// <summary>0 .. WorldSize−1; rank 0 is the one that writes output and prints.</summary>
    int Rank { get; }

    int WorldSize { get; }

    /// <summary>Replaces <paramref name="values"/> on every rank by the element-wise sum over all ranks.</summary>
    void AllReduceSum(Span<float> values);

    /// <inheritdoc cref="AllReduceSum(Span{float})"/>
    void AllReduceSum(Span<double> values);

    /// <summary>Every rank's <paramref name="local"/> (all of the same length), concatenated in rank order into <paramref name="all"/>.</summary>
    void AllGather(ReadOnlySpan<float> local, Span<float> all);

    /// <summary>Overwrites <paramref name="buffer"/> on every rank with rank <paramref name="root"/>'s contents.</summary>
    void Broadcast(Span<byte> buffer, int root);

    /// <summary>Returns when every rank has called it.</summary>
    void Barrier();

    /// <summary>
    /// Called exactly once by every rank when its startup (arguments, data, models, resume state) either
    /// succeeded or failed: the lowest rank that failed, or null when all succeeded. Lets exactly one rank
    /// report a bad input that every rank detected, and lets the others stop without a message.
    /// <see cref="StartupAgreement.RunStartup"/> makes the failing call for a startup that throws.
    /// </summary>
    int? AgreeOnStartup(bool failedHere);

    /// <summary>True once <see cref="AgreeOnStartup"/> has been called on this rank.</summary>
    bool StartupAgreed { get; }

    /// <summary>True when <see cref="AgreeOnStartup"/> found a failed rank: every rank then ends by itself, none waits.</summary>
    bool StartupFailed { get; }

    /// <summary>Ends every rank of the job with <paramref name="exitCode"/>; does not return.</summary>
    void Abort(int exitCode);
}

/// <summary>Thrown on the ranks whose startup succeeded when another rank's failed (that rank reports the error).</summary>
public sealed class StartupFailedElsewhereException(int failedRank)
    : Exception($"rank {failedRank} failed during startup; it reports the error")
{
    public int FailedRank { get; } = failedRank;
}
