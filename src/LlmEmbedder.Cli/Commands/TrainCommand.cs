using System.CommandLine;
using LlmEmbedder.Training;
using Spectre.Console;

namespace LlmEmbedder.Cli.Commands;

/// <summary>train: run_dense.py's flags, same names and defaults. With no flags at all, the embedded default run.</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var command = new Command("train", "Fine-tune an embedding model (the LLM-Embedder run_dense recipe). No flags: the embedded default on samples/.");
        var modelBinder = new ArgumentsBinder<ModelArguments>(command, args => args.Validate());
        var trainingBinder = new ArgumentsBinder<TrainingArguments>(command, args => args.Validate());
        command.SetAction(parsed => DistributedLaunch.Run(processGroup =>
        {
            bool embeddedDefault = parsed.Tokens.All(t => t.Type == System.CommandLine.Parsing.TokenType.Command);
            var (modelArgs, trainArgs) = embeddedDefault ? EmbeddedDefault.Arguments() : (modelBinder.Bind(parsed), trainingBinder.Bind(parsed));
            // Under mpirun only rank 0 prints (the others' messages would repeat it).
            bool quiet = processGroup.Rank != 0;
            if (embeddedDefault && !quiet)
                AnsiConsole.MarkupLine($"[bold]Embedded default run[/]: a small BERT with the Chinese vocabulary, fine-tuned on the sample data in samples/ " +
                    $"(output in [blue]{Markup.Escape(trainArgs.OutputDir)}[/], replacing an earlier default run there: --overwrite_output_dir). " +
                    "Run [grey]llm-embedder train --help[/] for the flags.");
            var evaluator = LlmEmbedder.Retrieval.EncoderEvaluator.FromArguments(modelArgs);
            // Rank 0 downloads a hub model (or makes the embedded default's start model) first; the others then find it.
            string Resolve(string model) => DistributedLaunch.RankZeroFirst(processGroup,
                () => embeddedDefault ? EmbeddedDefault.PrepareInitialModel(model) : ModelArgument.Resolve(model, quiet));
            var trainer = new Trainer(modelArgs, trainArgs, quiet ? new SilentTrainingObserver() : new ConsoleTrainingObserver(), Resolve, processGroup);
            TrainingResult result;
            using (var signals = new StopSignals(quiet))
                result = trainer.Run(evaluator, signals.StopRequested);
            if (result.Stopped)
            {
                if (!quiet) Console.Error.WriteLine($"llm-embedder: stopped at step {result.Steps}; resume with --resume_from_checkpoint latest");
                return CommandRunner.Interrupted;
            }
            if (quiet) return 0;
            if (result.MetricsBefore is { } before && result.MetricsAfter is { } after)
                MetricTable.PrintComparison("after", after, "before", before, baselineFirst: true, "change (after − before)");
            AnsiConsole.MarkupLine($"done: {result.Steps} steps; model in [blue]{Markup.Escape(Path.Combine(result.OutputDir, modelArgs.TieEncoders ? "encoder" : "query_encoder"))}[/], " +
                $"loss curve in [blue]{Markup.Escape(Path.Combine(result.OutputDir, "loss.png"))}[/]");
            if (embeddedDefault)
            {
                AnsiConsole.MarkupLine("[bold]Merging[/] the fine-tuned model with its start model (LM-Cocktail): weights chosen on the sample eval set " +
                    "and on a general set the data never trains (samples/general)");
                MergeCommand.Run(EmbeddedDefault.MergeRequest(modelArgs));
            }
            return 0;
        }));
        return command;
    }
}

/// <summary>The observer of ranks other than 0 under mpirun: rank 0 reports for the job.</summary>
internal sealed class SilentTrainingObserver : ITrainingObserver
{
    public void Message(string text) { }

    public void Step(TrainingStepLog log, bool logged) { }

    public void Evaluated(int step, string label, IReadOnlyDictionary<string, double> metrics) { }
}

/// <summary>Progress on the console: a line per logging step, a table of metrics before/after.</summary>
internal sealed class ConsoleTrainingObserver : ITrainingObserver
{
    public void Message(string text) => AnsiConsole.MarkupLine($"[grey]{Markup.Escape(text)}[/]");

    public void Step(TrainingStepLog log, bool logged)
    {
        if (!logged) return;
        AnsiConsole.MarkupLine(
            $"step [bold]{log.Step}[/]/{log.TotalSteps}  epoch {log.Epoch:F2}  loss [yellow]{log.Loss:F4}[/]  lr {log.LearningRate:E2}  " +
            $"grad {log.GradNorm:F2}  {log.SamplesPerSecond:F1} samples/s  elapsed {log.Elapsed:hh\\:mm\\:ss}  ETA {log.Remaining:hh\\:mm\\:ss}");
    }

    public void Evaluated(int step, string label, IReadOnlyDictionary<string, double> metrics) =>
        AnsiConsole.MarkupLine($"[green]eval {Markup.Escape(label)}[/] (step {step}): " +
            string.Join("  ", metrics.Select(m => $"{m.Key} {m.Value:F4}")));
}
