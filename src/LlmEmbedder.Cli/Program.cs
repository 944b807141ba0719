using LlmEmbedder.Cli.Commands;

// Piped output (logs, CI) should not wrap at 80 columns. mpirun hands its ranks an 80-column pseudo-terminal even
// when its own output goes to a log, so under mpirun the output is plain text too.
if (Console.IsOutputRedirected) Spectre.Console.AnsiConsole.Profile.Width = 240;
if (DistributedLaunch.LaunchedByMpirun)
{
    // A dumb terminal: .NET's console then writes no terminal control codes (colours, keypad mode) at all.
    Environment.SetEnvironmentVariable("TERM", "dumb");
    Spectre.Console.AnsiConsole.Console = Spectre.Console.AnsiConsole.Create(new Spectre.Console.AnsiConsoleSettings
    {
        Ansi = Spectre.Console.AnsiSupport.No,
        ColorSystem = Spectre.Console.ColorSystemSupport.NoColors,
    });
    Spectre.Console.AnsiConsole.Profile.Width = 240;
}

var root = LlmEmbedderCommand.Create();
var parsed = root.Parse(args);
// Under mpirun every rank parses the same arguments: one copy of a usage error is enough.
if (DistributedLaunch.LaunchRank != 0 && parsed.Errors.Count > 0) return CommandRunner.UserError;
// Only training is data-parallel; N copies of encode/eval/mine would race to write the same output.
if (DistributedLaunch.LaunchedByMpirun && parsed.CommandResult.Command.Name is not ("train" or CollectivesCheckCommand.Name))
{
    if (DistributedLaunch.LaunchRank == 0)
        Console.Error.WriteLine($"llm-embedder: error: only train runs under mpirun; run '{parsed.CommandResult.Command.Name}' as a single process");
    return CommandRunner.UserError;
}
return DistributedLaunch.Finish(CommandRunner.Invoke(parsed));
