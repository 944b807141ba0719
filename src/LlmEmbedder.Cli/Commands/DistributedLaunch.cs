using LlmEmbedder.Distributed;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// <c>mpirun -np N llm-embedder train ...</c>: joins the MPI job when mpirun started this process (a plain run never
/// loads libmpi), makes one rank report a failure, and ends the whole job when a rank fails mid-run, since the
/// other ranks would otherwise wait for it forever in their next collective.
/// </summary>
internal static class DistributedLaunch
{
    private static IProcessGroup? current;

    public static bool LaunchedByMpirun => MpiProcessGroup.LaunchedByMpirun;

    /// <summary>This process's rank as mpirun announced it (0 outside mpirun), known before MPI is initialised.</summary>
    public static int LaunchRank => int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_RANK"), out var rank) ? rank : 0;

    /// <summary>
    /// Runs <paramref name="command"/> on this rank. A failure before the ranks agreed that startup succeeded (bad
    /// flags, data, model) is seen by every rank alike, so only the lowest failing rank reports it (the exception
    /// goes on to <see cref="CommandRunner"/>); the others exit with the same code, silently.
    /// </summary>
    public static int Run(Func<IProcessGroup, int> command)
    {
        var group = Start();
        try
        {
            // The trainer agrees on startup itself; this covers the command's own startup (flags, the evaluator) before it.
            return group.RunStartup(() => command(group));
        }
        catch (StartupFailedElsewhereException)
        {
            return CommandRunner.UserError;
        }
    }

    /// <summary>
    /// Runs <paramref name="prepare"/> on rank 0 before the other ranks (for files they would otherwise race to create).
    /// If it fails on rank 0, every rank fails startup and rank 0 reports why.
    /// </summary>
    public static T RankZeroFirst<T>(IProcessGroup group, Func<T> prepare)
    {
        if (group.WorldSize == 1) return prepare();
        Span<byte> failed = [0];
        if (group.Rank == 0)
        {
            try
            {
                var result = prepare();
                group.Broadcast(failed, root: 0);
                return result;
            }
            catch
            {
                failed[0] = 1;
                group.Broadcast(failed, root: 0);
                throw;
            }
        }
        group.Broadcast(failed, root: 0);
        if (failed[0] != 0) throw new StartupFailedElsewhereException(0);
        return prepare();
    }

    /// <summary>
    /// After the command: MPI_Finalize on a normal or agreed exit (a stop the ranks agreed on is one); MPI_Abort when this
    /// rank failed on its own mid-run (its error is already printed), which ends every rank within seconds instead of
    /// leaving them hanging.
    /// </summary>
    public static int Finish(int exitCode)
    {
        if (current is null) return exitCode;
        bool agreed = exitCode is 0 or CommandRunner.Interrupted || current.StartupFailed;
        if (!agreed && current.WorldSize > 1) current.Abort(exitCode);
        current.Dispose();
        return exitCode;
    }

    private static IProcessGroup Start()
    {
        if (current is not null) return current;
        var group = MpiProcessGroup.LaunchedByMpirun ? (IProcessGroup)new MpiProcessGroup() : new SingleProcess();
        current = group;
        if (group.WorldSize > 1)
        {
            AppDomain.CurrentDomain.UnhandledException += (_, e) =>
            {
                Console.Error.WriteLine($"llm-embedder: internal error on rank {group.Rank}: {e.ExceptionObject}");
                group.Abort(CommandRunner.InternalError);
            };
            // Ranks on one machine share its cores: N ranks × all-core OpenMP pools would thrash. OMP_NUM_THREADS wins.
            if (Environment.GetEnvironmentVariable("OMP_NUM_THREADS") is null)
            {
                int ranksHere = int.TryParse(Environment.GetEnvironmentVariable("OMPI_COMM_WORLD_LOCAL_SIZE"), out var local) ? local : group.WorldSize;
                TorchSharp.torch.set_num_threads(Math.Max(1, Environment.ProcessorCount / Math.Max(1, ranksHere)));
            }
        }
        return group;
    }
}
