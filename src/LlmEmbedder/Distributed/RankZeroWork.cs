using System.Runtime.ExceptionServices;

namespace LlmEmbedder.Distributed;

/// <summary>Startup work only rank 0 does (claiming output_dir), with its outcome shared so that the ranks go on or stop together.</summary>
public static class RankZeroWork
{
    /// <summary>
    /// Runs <paramref name="work"/> on rank 0 and returns its result there (null on the other ranks), then tells every rank
    /// whether it succeeded. If it threw, rank 0 rethrows (it reports the error) and the others throw
    /// <see cref="StartupFailedElsewhereException"/>, before any rank reaches another collective that rank 0 would miss.
    /// Every rank calls it at the same point of its startup.
    /// </summary>
    public static T? OnRankZero<T>(this IProcessGroup group, Func<T> work) where T : class
    {
        if (group.WorldSize == 1) return work();
        Span<byte> failed = [0];
        T? result = null;
        ExceptionDispatchInfo? error = null;
        if (group.Rank == 0)
        {
            try
            {
                result = work();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
                failed[0] = 1;
            }
        }
        group.Broadcast(failed, root: 0);
        error?.Throw();
        if (failed[0] != 0) throw new StartupFailedElsewhereException(0);
        return result;
    }
}
