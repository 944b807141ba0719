using LlmEmbedder.Tests.Training;

namespace LlmEmbedder.Tests.Cli;

/// <summary>Valid inputs for <see cref="CliBadFlagValuesTests"/>: a tiny model, training, eval and mining files, texts.</summary>
public sealed class BadFlagValuesFixture : IDisposable
{
    public string Dir { get; } = TestPaths.NewTempDir("cli-flags");

    public BadFlagValuesFixture()
    {
        CliProcess.TinyChineseModel(Dir, name: "model");
        TrainingDataGenerator.Write(Path.Combine(Dir, "train.jsonl"), rows: 8, task: "qa", seed: 1, negatives: 3);
        File.WriteAllText(Path.Combine(Dir, "train_bad.jsonl"),
            """{"query": "今天星期几", "pos": ["今天是星期一"], "neg": ["明天下雨"], "task": "qa"}""" + "\n" +
            """{"query": "坏行", "pos": ["好"] "neg": ["坏"], "task": "qa"}""" + "\n");
        File.WriteAllLines(Path.Combine(Dir, "corpus.jsonl"), [
            """{"title": "北京", "text": "北京是中国的首都。"}""",
            """{"title": "上海", "text": "上海是中国最大的城市。"}""",
        ]);
        File.WriteAllLines(Path.Combine(Dir, "eval.jsonl"), ["""{"query": "中国的首都是哪里", "pos_index": [0]}"""]);
        File.WriteAllLines(Path.Combine(Dir, "eval_bad.jsonl"), [
            """{"query": "中国的首都是哪里", "pos_index": [0]}""",
            """{"query": "上海", "pos_index": [7]}""",
        ]);
        File.WriteAllLines(Path.Combine(Dir, "texts.txt"), ["今天星期几", "北京是中国的首都。"]);
        File.WriteAllBytes(Path.Combine(Dir, "texts_gb18030.txt"), [.. "ok\n"u8, 0xBD, 0xF1, 0xCC, 0xEC, (byte)'\n']);
        File.WriteAllLines(Path.Combine(Dir, "mine.jsonl"), ["""{"query": "中国的首都是哪里", "pos": ["北京是中国的首都。"], "neg": ["上海是中国最大的城市。"]}"""]);
        File.WriteAllLines(Path.Combine(Dir, "mine_bad.jsonl"), [
            """{"query": "中国的首都是哪里", "pos": ["北京是中国的首都。"]}""",
            """{"query": "上海", "neg": ["长江"]}""",
        ]);
    }

    public void Dispose() => Directory.Delete(Dir, recursive: true);
}

/// <summary>
/// Bad values of the flags of every command, each with the one line it must give: exit 1, exactly one stderr line
/// "llm-embedder: error: ..." with the expected words (the file and line where a file is at fault), no stack trace, and
/// nothing created or changed in the working folder (outputs would go there, and relative defaults too). Every case
/// fails before a model or data is loaded, except where the value can only be judged against them (max lengths above
/// the model's positions, a file's rows).
/// </summary>
public sealed class CliBadFlagValuesTests(BadFlagValuesFixture fixture) : IClassFixture<BadFlagValuesFixture>
{
    // Shorthands for a command with everything it needs, so a case names only what it gets wrong.
    private static readonly Dictionary<string, string> Commands = new()
    {
        ["{T}"] = "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --dtype fp32 --per_device_train_batch_size 2 --train_group_size 2 --max_steps 1",
        ["{E}"] = "encode --model {dir}/model --input {dir}/texts.txt --output {dir}/out.npy",
        ["{K}"] = "tokenize --model {dir}/model",
        ["{V}"] = "eval --model {dir}/model --eval_data {dir}/eval.jsonl --corpus {dir}/corpus.jsonl --output_dir {dir}/out",
        ["{M}"] = "mine --model {dir}/model --input_file {dir}/mine.jsonl --output_file {dir}/mined.jsonl --range_for_sampling 0-2",
        ["{X}"] = "export --encoder {dir}/model --output_dir {dir}/out",
        ["{S}"] = "score --model {dir}/model --input_file {dir}/mine.jsonl --output_file {dir}/scored.jsonl",
    };

    public static TheoryData<string, string> Cases => new()
    {
        // train: each range of the records, as run_dense / Hugging Face would accept
        { "{T} --learning_rate -1", "--learning_rate must be > 0, got -1" },
        { "{T} --learning_rate 0", "--learning_rate must be > 0, got 0" },
        { "{T} --learning_rate NaN", "--learning_rate must be a finite number > 0, got NaN" },
        { "{T} --learning_rate 1e309", "--learning_rate must be a finite number > 0, got Infinity" },
        { "{T} --learning_rate 1e300", "--learning_rate must be a finite number > 0, got 1e+300 (beyond float32" },
        { "{T} --learning_rate abc", "--learning_rate: 'abc' is not a number" },
        { "{T} --weight_decay -5", "--weight_decay must be >= 0, got -5" },
        { "{T} --warmup_ratio 2", "--warmup_ratio must be 0 to 1, got 2" },
        { "{T} --warmup_ratio -0.1", "--warmup_ratio must be 0 to 1, got -0.1" },
        { "{T} --cos_temperature 0", "--cos_temperature must be > 0, got 0" },
        { "{T} --cos_temperature 1e-320", "--cos_temperature must be > 0, got 1e-320 (0 in float32" },
        { "{T} --teacher_temperature 0", "--teacher_temperature must be > 0, got 0" },
        { "{T} --student_temperature -1", "--student_temperature must be > 0, got -1" },
        { "{T} --contrastive_weight -0.5", "--contrastive_weight must be >= 0, got -0.5" },
        { "{T} --distill_weight -1", "--distill_weight must be >= 0, got -1" },
        { "{T} --contrastive_weight 0", "train.jsonl: task qa: no training loss is active: contrastive_weight is 0" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --train_group_size 1", "--train_group_size must be 2 to 1024, got 1" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --train_group_size 2147483647",
            "--train_group_size must be 2 to 1024, got 2147483647" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --per_device_train_batch_size 0",
            "--per_device_train_batch_size must be >= 1, got 0" },
        { "{T} --gradient_accumulation_steps 0", "--gradient_accumulation_steps must be >= 1, got 0" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --num_train_epochs 0",
            "--num_train_epochs must be > 0 unless --max_steps is given, got 0" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --num_train_epochs -1",
            "--num_train_epochs must be > 0 unless --max_steps is given, got -1" },
        { "{T} --num_train_epochs NaN", "--num_train_epochs must be a finite number" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --max_steps 0", "--max_steps must be -1 or >= 1, got 0" },
        { "train --query_encoder {dir}/model --train_data {dir}/train.jsonl --output_dir {dir}/out --max_steps -5", "--max_steps must be -1 or >= 1, got -5" },
        { "{T} --save_steps -1", "--save_steps must be >= 0, got -1" },
        { "{T} --logging_steps 0", "--logging_steps must be >= 1, got 0" },
        { "{T} --eval_steps -1", "--eval_steps must be >= 0, got -1" },
        { "{T} --early_exit_steps 0", "--early_exit_steps must be >= 1, got 0" },
        { "{T} --max_sample_num 0", "--max_sample_num must be >= 1, got 0" },
        { "{T} --max_sample_num 99999999999", "--max_sample_num: '99999999999' is not a whole number" },
        { "{T} --teacher_scores_margin NaN", "--teacher_scores_margin must be a finite number, got NaN" },
        { "{T} --teacher_scores_min -1e309", "--teacher_scores_min must be a finite number, got -Infinity" },
        { "{T} --max_grad_norm NaN", "--max_grad_norm must be a finite number, got NaN" },
        { "{T} --seed 99999999999", "--seed: '99999999999' is not a whole number from -2147483648 to 2147483647" },
        { "{T} --seed 1.5", "--seed: '1.5' is not a whole number" },
        { "{T} --query_max_length 0", "--query_max_length must be 2 to the model's max_position_embeddings, got 0" },
        { "{T} --key_max_length 1", "--key_max_length must be 2 to the model's max_position_embeddings, got 1" },
        { "{T} --query_max_length 100000", "query max length 100000 must be between 2 and the model's 512 positions" },
        { "{T} --hits 0", "--hits must be >= 1, got 0" },
        { "{T} --hits 50", "hits (50) is smaller than the largest cutoff (100)" },
        { "{T} --cutoffs 0 5", "--cutoffs must be >= 1, got 0" },
        { "{T} --cutoffs 1 x", "--cutoffs: 'x' is not a whole number" },
        { "{T} --batch_size 0", "--batch_size must be >= 1, got 0" },
        { "{T} --learning_rate 1e-5 --learning_rate 2e-5", "Option '--learning_rate' expects a single argument but 2 were provided" },
        { "{T} --no_such_flag 1", "Unrecognized command or argument '--no_such_flag'" },
        { "{T} --report_to wandb", "--report_to 'wandb': expected none or tensorboard" },
        { "{T} --inbatch_same_dataset sometimes", "inbatch_same_dataset \"sometimes\" is not one of" },
        { "train --query_encoder {dir}/model --train_data {dir}/train_bad.jsonl --output_dir {dir}/out --dtype fp32 --train_group_size 2 --max_steps 1",
            "{dir}/train_bad.jsonl:2: malformed JSON" },
        // encode
        { "{E} --batch_size 0", "--batch_size must be >= 1, got 0" },
        { "{E} --batch_size -3", "--batch_size must be >= 1, got -3" },
        { "{E} --max_length 1", "--max_length must be 2 to the model's max_position_embeddings, got 1" },
        { "{E} --max_length abc", "--max_length: 'abc' is not a whole number" },
        { "{E} --max_length 9999", "query max length 9999 must be between 2 and the model's 512 positions" },
        { "{E} --role side", "--role: Argument 'side' not recognized. Must be one of: 'query' 'key'" },
        { "{E} --dtype fp16", "--dtype: Argument 'fp16' not recognized" },
        { "encode --model {dir}/model --input {dir}/texts_gb18030.txt --output {dir}/out.npy", "{dir}/texts_gb18030.txt:2: not valid UTF-8" },
        // tokenize
        { "{K} --max_length 1", "--max_length must be >= 2, got 1" },
        { "{K} --max_length -5", "--max_length must be >= 2, got -5" },
        { "{K} --max_length 99999999999", "--max_length: '99999999999' is not a whole number" },
        // eval
        { "{V} --hits 0", "--hits must be >= 1, got 0" },
        { "{V} --hits 3", "hits (3) is smaller than the largest cutoff (100)" },
        { "{V} --cutoffs 300", "hits (200) is smaller than the largest cutoff (300)" },
        { "{V} --cutoffs 0", "--cutoffs must be >= 1, got 0" },
        { "{V} --cutoffs -1 1", "--cutoffs must be >= 1, got -1" },
        { "{V} --batch_size 0", "--batch_size must be >= 1, got 0" },
        { "{V} --max_length 1", "--max_length must be 2 to the model's max_position_embeddings, got 1" },
        { "{V} --max_length 600", "query max length 600 must be between 2 and the model's 512 positions" },
        { "{V} --index faiss", "--index: Argument 'faiss' not recognized. Must be one of: 'exact' 'hnsw'" },
        { "{V} --metrics map", "unknown metric 'map'" },
        { "eval --model {dir}/model --eval_data {dir}/eval_bad.jsonl --corpus {dir}/corpus.jsonl --output_dir {dir}/out",
            "{dir}/eval_bad.jsonl:2: pos_index 7 is out of range" },
        // mine
        { "{M} --negative_number 0", "--negative_number must be >= 1, got 0" },
        { "{M} --negative_number -1", "--negative_number must be >= 1, got -1" },
        { "mine --model {dir}/model --input_file {dir}/mine.jsonl --output_file {dir}/mined.jsonl --range_for_sampling 5-5", "range_for_sampling '5-5': expected start-end with start < end" },
        { "mine --model {dir}/model --input_file {dir}/mine.jsonl --output_file {dir}/mined.jsonl --range_for_sampling -1-5", "range_for_sampling '-1-5'" },
        { "mine --model {dir}/model --input_file {dir}/mine.jsonl --output_file {dir}/mined.jsonl",
            "--range_for_sampling 10-210 starts past the pool of 2 texts (positions 0-1)" },
        { "{M} --seed 99999999999999999999", "--seed: '99999999999999999999' is not a whole number" },
        { "{M} --batch_size 0", "--batch_size must be >= 1, got 0" },
        { "{M} --max_length 1", "--max_length must be 2 to the model's max_position_embeddings, got 1" },
        { "mine --model {dir}/model --input_file {dir}/mine_bad.jsonl --output_file {dir}/mined.jsonl --range_for_sampling 0-2",
            "{dir}/mine_bad.jsonl:2: no \"pos\" field" },
        { "{M} --relative_margin 1.5", "--relative_margin must be 0 to 1, got 1.5" },
        { "{M} --relative_margin -0.1", "--relative_margin must be 0 to 1, got -0.1" },
        { "{M} --absolute_margin -1", "--absolute_margin must be >= 0, got -1" },
        { "{M} --absolute_margin NaN", "--absolute_margin must be a finite number >= 0, got NaN" },
        { "{M} --scorer {dir}/model", "--scorer rescores candidates for --absolute_margin or --relative_margin; give one of them" },
        { "{M} --scorer_sigmoid", "--scorer_sigmoid applies to the --scorer's scores; give --scorer" },
        { "{M} --relative_margin 0.05 --scorer {dir}/model", "--scorer {dir}/model: not a cross-encoder" },
        // score
        { "{S} --batch_size 0", "--batch_size must be >= 1, got 0" },
        { "{S} --sigmoid", "--sigmoid applies to cross-encoders; {dir}/model is an embedding model" },
        { "score --model {dir}/model --input_file {dir}/mine_bad.jsonl --output_file {dir}/scored.jsonl", "{dir}/mine_bad.jsonl:1: row has no \"neg\"" },
        // export
        { "{X} --max_seq_length 1", "--max_seq_length must be 2 to the model's max_position_embeddings, got 1" },
        { "{X} --max_seq_length 0", "--max_seq_length must be 2 to the model's max_position_embeddings, got 0" },
        { "{X} --max_seq_length 600", "query max length 600 must be between 2 and the model's 512 positions" },
        { "{X} --max_seq_length x", "--max_seq_length: 'x' is not a whole number" },
        { "{X} --pooling_method max", "--pooling_method: Argument 'max' not recognized" },
        // no command, or a hidden one without its required option
        { "--learning_rate 1", "Unrecognized command or argument '--learning_rate'" },
        { "collectives-check", "Option '--output' is required" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void BadValueIsOneLineExitOneAndChangesNothing(string args, string expected)
    {
        var dir = fixture.Dir;
        var before = Snapshot(dir);
        var result = CliProcess.Run(Expand(args, dir), environment: Environment(dir), workingDirectory: dir);

        Assert.True(result.ExitCode == 1, $"exit code {result.ExitCode}; stderr: {result.Stderr}");
        var line = Assert.Single(result.StderrLines);
        Assert.StartsWith("llm-embedder: error: ", line);
        Assert.Contains(expected.Replace("{dir}", dir), line);
        Assert.DoesNotContain("   at ", result.Stderr + result.Stdout);
        Assert.Equal(before, Snapshot(dir));
    }

    [Fact]
    public void TokenizeInputThatIsNotUtf8IsOneLineWithTheLine()
    {
        var dir = fixture.Dir;
        var before = Snapshot(dir);
        var result = CliProcess.Run(Expand("{K}", dir), stdinBytes: [.. "ok\n"u8, 0xFF, (byte)'\n'], environment: Environment(dir), workingDirectory: dir);
        Assert.Equal(1, result.ExitCode);
        Assert.StartsWith("llm-embedder: error: <stdin>:2: not valid UTF-8", Assert.Single(result.StderrLines));
        Assert.Empty(result.Stdout);
        Assert.Equal(before, Snapshot(dir));
    }

    [Fact]
    public void TheSuiteHasAtLeastSixtyCasesOverEveryCommand()
    {
        var cases = Cases.Select(row => (string)row[0]).ToList();
        Assert.True(cases.Count >= 60, $"{cases.Count} cases");
        foreach (var command in new[] { "train", "encode", "tokenize", "eval", "mine", "score", "export" })
            Assert.Contains(cases, c => Expand(c, "d")[0] == command);
    }

    internal static string[] Expand(string args, string dir)
    {
        foreach (var (shorthand, full) in Commands) args = args.Replace(shorthand, full);
        return args.Replace("{dir}", dir).Split(' ');
    }

    // Nothing may touch the network or a cache outside the working folder.
    internal static Dictionary<string, string> Environment(string dir) => new()
    {
        ["HF_HUB_OFFLINE"] = "1",
        ["HF_HOME"] = Path.Combine(dir, "hf-home"),
        ["LLM_EMBEDDER_CACHE"] = Path.Combine(dir, "cache"),
    };

    /// <summary>Every file and folder under <paramref name="dir"/> with its size and modification time.</summary>
    internal static SortedDictionary<string, string> Snapshot(string dir)
    {
        var entries = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var path in Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories))
        {
            var info = new FileInfo(path);
            entries[Path.GetRelativePath(dir, path)] = Directory.Exists(path)
                ? $"dir {Directory.GetLastWriteTimeUtc(path).Ticks}"
                : $"{info.Length} bytes {info.LastWriteTimeUtc.Ticks}";
        }
        return entries;
    }
}
