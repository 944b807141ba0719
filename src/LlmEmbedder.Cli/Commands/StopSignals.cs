using System.Runtime.InteropServices;

namespace LlmEmbedder.Cli.Commands;

/// <summary>
/// Ctrl-C (SIGINT) or SIGTERM during training: the first asks the trainer to save a checkpoint at the next step
/// boundary and stop (exit 130); a second one ends the process at once, also with 130. What a save in progress leaves
/// is only a temporary folder (AtomicFolder), never a half-written folder under a final name.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource stop = new();
    private readonly bool quiet;
    private readonly PosixSignalRegistration[] registrations;
    private int received;

    /// <param name="quiet">Print nothing (ranks other than 0 under mpirun).</param>
    public StopSignals(bool quiet)
    {
        this.quiet = quiet;
        registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal)];
    }

    public CancellationToken StopRequested => stop.Token;

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        if (Interlocked.Increment(ref received) == 1)
        {
            if (!quiet) Console.Error.WriteLine("llm-embedder: stopping after this step with a checkpoint; press Ctrl-C again to stop at once");
            stop.Cancel();
            return;
        }
        if (!quiet) Console.Error.WriteLine("llm-embedder: stopped at once; resume from the last saved checkpoint with --resume_from_checkpoint latest");
        // _exit, not Environment.Exit: libtorch's static destructors would run under the step still computing and crash it.
        ExitNow(CommandRunner.Interrupted);
    }

    [DllImport("libc", EntryPoint = "_exit")]
    private static extern void ExitNow(int status);

    public void Dispose()
    {
        foreach (var registration in registrations) registration.Dispose();
        stop.Dispose();
    }
}
