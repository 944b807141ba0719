namespace LlmEmbedder.Data;

/// <summary>What decides how --train_data becomes training groups (the data flags of run_dense.py).</summary>
/// <param name="TrainData">--train_data entries: files, llm-embedder:-prefixed paths, glob patterns; repeats up-weight.</param>
/// <param name="CommandLine">The per-task settings from the flags; with <paramref name="UseTrainConfig"/> the version's table overrides what it lists.</param>
/// <param name="InstructionFile">--instruction_file: versions added to (or replacing) the built-in ones.</param>
/// <param name="SkipBadRows">Skip and count malformed rows instead of stopping at the first.</param>
/// <param name="Encoding">--encoding of the training and instruction files; null is UTF-8.</param>
public sealed record TrainingDataOptions(
    IReadOnlyList<string> TrainData,
    string DataRoot = TrainingJsonl.DefaultDataRoot,
    string Version = "bge",
    string? InstructionFile = null,
    bool AddInstruction = true,
    bool UseTrainConfig = false,
    int TrainGroupSize = 8,
    TaskTrainingConfig? CommandLine = null,
    long Seed = 42,
    bool SkipBadRows = false,
    TextEncoding? Encoding = null);

/// <summary>One --train_data entry after preprocessing: its groups are Groups[Offset .. Offset+Count).</summary>
/// <param name="Name">Parent directory name, suffixed _1, _2, ... when repeated.</param>
/// <param name="Task">The task of the file's first row.</param>
/// <param name="Config">The settings used for this dataset (command line, or with the version's training table applied).</param>
/// <param name="RowsRead">Valid rows read.</param>
/// <param name="SkippedRows">Bad rows skipped (only in skip-bad-rows mode).</param>
/// <param name="DroppedRows">Valid rows that gave no sample: filtered by teacher scores, no negatives, or beyond max_sample_num.</param>
public sealed record TrainingDataset(
    string Name,
    string SourceFile,
    string Task,
    TaskTrainingConfig Config,
    Instruction? Instruction,
    int Offset,
    int Count,
    bool HasTeacherScores,
    int RowsRead,
    int SkippedRows,
    string? FirstSkippedError,
    int DroppedRows)
{
    public DatasetSpan Span => new(Name, Task, Offset, Count, HasTeacherScores);
}

/// <summary>
/// All training groups of a run, concatenated in --train_data order, plus the datasets they came from.
/// Sample indices used by the batch samplers are indices into <see cref="Groups"/>.
/// </summary>
public sealed class TrainingData
{
    /// <summary>Stream tag of the per-row generators (kept apart from the samplers' streams).</summary>
    private const long GroupingStream = 0x6772_6F75_70;

    public IReadOnlyList<TrainingDataset> Datasets { get; }
    public IReadOnlyList<TrainingGroup> Groups { get; }
    public IReadOnlyList<DatasetSpan> Spans => Datasets.Select(d => d.Span).ToArray();

    /// <summary>
    /// The dataset a batch belongs to, for its task's loss settings. In mode none the batch mixes datasets
    /// of one task (the sampler refuses anything else), so any of its samples tells.
    /// </summary>
    public TrainingDataset DatasetOf(SamplerBatch batch) =>
        Datasets[batch.DatasetIndex ?? Groups[batch.GlobalIndices[0]].DatasetIndex];

    private TrainingData(IReadOnlyList<TrainingDataset> datasets, IReadOnlyList<TrainingGroup> groups)
    {
        Datasets = datasets;
        Groups = groups;
    }

    public static TrainingData Load(TrainingDataOptions options)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(options.TrainGroupSize, 1);
        if (options.TrainData.Count == 0)
            throw new EmbedderException("no --train_data given");
        var instructions = options.InstructionFile is null ? InstructionSet.BuiltIn : InstructionSet.BuiltIn.WithFile(options.InstructionFile, options.Encoding);
        var version = instructions.Get(options.Version);
        var commandLine = options.CommandLine ?? new TaskTrainingConfig();
        var files = TrainingJsonl.ResolveTrainData(options.TrainData, options.DataRoot);
        var names = DatasetNames(files);

        var datasets = new List<TrainingDataset>(files.Count);
        var groups = new List<TrainingGroup>();
        for (var index = 0; index < files.Count; index++)
        {
            var dataset = LoadDataset(files[index], names[index], index, groups.Count, options, version, commandLine, groups);
            datasets.Add(dataset);
        }
        return new TrainingData(datasets, groups);
    }

    /// <summary>
    /// Names after the parent directory (qa/nq/train.jsonl → nq); the second file with a name gets _1, the
    /// third _2, as the reference counts duplicates.
    /// </summary>
    public static IReadOnlyList<string> DatasetNames(IReadOnlyList<string> files)
    {
        var seen = new Dictionary<string, int>(StringComparer.Ordinal);
        var names = new List<string>(files.Count);
        foreach (var file in files)
        {
            var name = Path.GetFileName(Path.GetDirectoryName(Path.GetFullPath(file))) ?? "";
            if (name.Length == 0) name = Path.GetFileNameWithoutExtension(file);
            if (seen.TryGetValue(name, out var repeats))
            {
                seen[name] = repeats + 1;
                names.Add($"{name}_{repeats + 1}");
            }
            else
            {
                seen[name] = 0;
                names.Add(name);
            }
        }
        return names;
    }

    private static TrainingDataset LoadDataset(
        string file, string name, int datasetIndex, int offset, TrainingDataOptions options,
        InstructionVersion version, TaskTrainingConfig commandLine, List<TrainingGroup> groups)
    {
        var skipped = 0;
        string? firstSkipped = null;
        Action<EmbedderException>? onBadRow = options.SkipBadRows
            ? error =>
            {
                skipped++;
                firstSkipped ??= error.Message;
            }
            : null;

        string? task = null;
        TaskTrainingConfig config = commandLine;
        Instruction? instruction = null;
        bool hasTeacherScores = false;
        var rowsRead = 0;
        var dropped = 0;
        var kept = new Queue<TrainingGroup>();
        foreach (var row in TrainingJsonl.ReadRows(file, onBadRow, options.Encoding))
        {
            if (task is null)
            {
                task = row.Task!;
                hasTeacherScores = row.TeacherScores is not null;
                try
                {
                    if (options.AddInstruction) instruction = version.InstructionFor(task);
                    if (options.UseTrainConfig) config = version.TrainingFor(task).ApplyTo(commandLine);
                }
                catch (EmbedderException e)
                {
                    throw EmbedderException.AtLine(file, row.Line, e.Message);
                }
            }
            rowsRead++;
            var random = DeterministicRandom.ForStream(options.Seed, GroupingStream, datasetIndex, row.Line);
            TrainingGroup? group;
            try
            {
                (_, group) = SampleGrouper.Group(row, file, options.TrainGroupSize, config, instruction, random, datasetIndex);
            }
            catch (EmbedderException error) when (onBadRow is not null)
            {
                rowsRead--;
                onBadRow(error);
                continue;
            }
            if (group is null)
            {
                dropped++;
                continue;
            }
            kept.Enqueue(group);
            // max_sample_num keeps the last n samples that survive preprocessing, as the reference's
            // train_test_split(max_sample_num, shuffle=False)["test"] does.
            if (config.MaxSampleNum is { } limit && kept.Count > limit)
            {
                kept.Dequeue();
                dropped++;
            }
        }
        if (rowsRead == 0)
            throw TrainingJsonl.NoRows(file, skipped, firstSkipped);
        // Found now, before a model is loaded or output_dir is written, rather than at the first step.
        if (Training.Losses.RetrievalLoss.NoActiveLoss(config.ContrastiveWeight, config.DistillWeight, hasTeacherScores) is { } noLoss)
            throw new EmbedderException($"{file}: task {task}: {noLoss}");

        groups.AddRange(kept);
        return new TrainingDataset(name, file, task!, config, instruction, offset, kept.Count, hasTeacherScores,
            rowsRead, skipped, firstSkipped, dropped);
    }
}
