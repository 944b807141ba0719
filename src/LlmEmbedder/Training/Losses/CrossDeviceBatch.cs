using TorchSharp;
using static TorchSharp.torch;

namespace LlmEmbedder.Training.Losses;

/// <summary>
/// The global batch for <c>negative_cross_device</c> (docs/REFERENCE.md §4): every rank's queries, keys and
/// teacher scores concatenated in rank order, with this rank's own tensors in their slot in place of
/// their gathered copies. An all-gather carries no autograd graph, so putting the local tensors back
/// is what lets the gradient of the global loss reach this rank's encoder through its own shard.
/// Built by <see cref="FromShards"/>; its tensors belong to the caller's dispose scope.
/// </summary>
public sealed class CrossDeviceBatch
{
    private CrossDeviceBatch(Tensor queries, Tensor keys, Tensor? teacherScores)
    {
        Queries = queries;
        Keys = keys;
        TeacherScores = teacherScores;
    }

    /// <summary>[W·B, D].</summary>
    public Tensor Queries { get; }

    /// <summary>[W·B·G, D], each rank's keys flattened as [q0_pos, q0_negs..., q1_pos, ...].</summary>
    public Tensor Keys { get; }

    /// <summary>[W·B, G], or null when the batch has no teacher scores.</summary>
    public Tensor? TeacherScores { get; }

    /// <summary>The same batch with only the first <paramref name="dimension"/> dimensions of every embedding (Matryoshka).</summary>
    public CrossDeviceBatch FirstDimensions(int dimension) =>
        new(Queries.narrow(1, 0, dimension), Keys.narrow(1, 0, dimension), TeacherScores);

    /// <summary>
    /// Assembles the global batch on rank <paramref name="rank"/> from the gathered shards of all ranks
    /// (index = rank; the copy of this rank's own shard is replaced by the local tensor).
    /// </summary>
    public static CrossDeviceBatch FromShards(
        int rank,
        Tensor localQueries, Tensor localKeys, Tensor? localTeacherScores,
        IReadOnlyList<Tensor> gatheredQueries, IReadOnlyList<Tensor> gatheredKeys, IReadOnlyList<Tensor>? gatheredTeacherScores)
    {
        if ((localTeacherScores is null) != (gatheredTeacherScores is null))
            throw new ArgumentException("teacher scores must be given both locally and gathered, or not at all");
        return new CrossDeviceBatch(
            WithLocalShard(gatheredQueries, rank, localQueries),
            WithLocalShard(gatheredKeys, rank, localKeys),
            localTeacherScores is null ? null : WithLocalShard(gatheredTeacherScores!, rank, localTeacherScores));
    }

    /// <summary>
    /// Concatenates <paramref name="gatheredShards"/> along dim 0, detached, except slot
    /// <paramref name="rank"/>, which is <paramref name="localShard"/> itself so it keeps its graph.
    /// </summary>
    public static Tensor WithLocalShard(IReadOnlyList<Tensor> gatheredShards, int rank, Tensor localShard)
    {
        if (rank < 0 || rank >= gatheredShards.Count)
            throw new ArgumentOutOfRangeException(nameof(rank), $"rank {rank} is outside the {gatheredShards.Count} gathered shards");
        if (!gatheredShards[rank].shape.SequenceEqual(localShard.shape))
            throw new ArgumentException(
                $"rank {rank}: gathered shard [{string.Join(", ", gatheredShards[rank].shape)}] and local tensor [{string.Join(", ", localShard.shape)}] differ in shape");
        using var scope = NewDisposeScope();
        var parts = new Tensor[gatheredShards.Count];
        for (var r = 0; r < parts.Length; r++)
            parts[r] = r == rank ? localShard : gatheredShards[r].detach();
        return cat(parts, dim: 0).MoveToOuterDisposeScope();
    }
}
