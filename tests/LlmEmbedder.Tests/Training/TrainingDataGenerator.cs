using System.Text.Json;

namespace LlmEmbedder.Tests.Training;

/// <summary>Seeded Chinese training rows {query, pos, neg, task[, teacher_scores]} for end-to-end training tests.</summary>
internal static class TrainingDataGenerator
{
    private static readonly string[] Subjects = ["北京", "上海", "长江", "熊猫", "茶叶", "长城", "火锅", "丝绸", "围棋", "京剧", "西湖", "黄河"];
    private static readonly string[] Facts = ["的历史很悠久", "每年吸引很多游客", "是中国的象征之一", "有许多有趣的故事", "和人们的生活密切相关", "在世界上很有名"];

    public static void Write(string path, int rows, string task, int seed, int negatives = 7, bool teacherScores = false)
    {
        var random = new Random(seed);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var writer = new StreamWriter(path);
        for (int i = 0; i < rows; i++)
        {
            var subject = Subjects[random.Next(Subjects.Length)];
            string Passage(string s) => $"{s}{Facts[random.Next(Facts.Length)]}，第{random.Next(1000)}号资料。";
            var negs = Enumerable.Range(0, negatives).Select(_ => Passage(Subjects[random.Next(Subjects.Length)])).ToArray();
            var row = new Dictionary<string, object>
            {
                ["query"] = $"关于{subject}的问题{i}",
                ["pos"] = new[] { Passage(subject) },
                ["neg"] = negs,
                ["task"] = task,
            };
            if (teacherScores) row["teacher_scores"] = Enumerable.Range(0, negatives + 1).Select(j => j == 0 ? 0.9 : random.NextDouble() * 0.5).ToArray();
            writer.WriteLine(JsonSerializer.Serialize(row, new JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }));
        }
    }
}
