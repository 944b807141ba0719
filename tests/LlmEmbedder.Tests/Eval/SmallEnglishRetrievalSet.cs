using System.Text.Json;

namespace LlmEmbedder.Tests.Eval;

/// <summary>
/// A small hand-written English retrieval set: 50 passages (title, text) on distinct topics and 20 queries, each
/// with the passages that answer it. Written for these tests; small enough to encode in a second or two.
/// </summary>
internal static class SmallEnglishRetrievalSet
{
    public static readonly (string Title, string Text)[] Passages =
    [
        ("Paris", "Paris is the capital and most populous city of France, on the river Seine."),
        ("Berlin", "Berlin is the capital of Germany and its largest city by population."),
        ("Madrid", "Madrid is the capital of Spain and sits in the centre of the Iberian Peninsula."),
        ("Rome", "Rome, the capital of Italy, was the centre of the Roman Empire for centuries."),
        ("Tokyo", "Tokyo is the capital of Japan and one of the largest metropolitan areas in the world."),
        ("Photosynthesis", "Photosynthesis lets plants turn sunlight, water and carbon dioxide into glucose and oxygen."),
        ("Chlorophyll", "Chlorophyll is the green pigment in leaves that absorbs light for photosynthesis."),
        ("Mitochondria", "Mitochondria are the organelles that produce most of a cell's chemical energy as ATP."),
        ("DNA", "DNA is a double helix molecule that carries the genetic instructions of living organisms."),
        ("Vaccines", "A vaccine trains the immune system to recognise a pathogen without causing the disease."),
        ("Python language", "Python is a high-level programming language known for readable syntax and dynamic typing."),
        ("C# language", "C# is a statically typed programming language from Microsoft that runs on .NET."),
        ("Garbage collection", "A garbage collector frees memory that a program can no longer reach."),
        ("Hash tables", "A hash table maps keys to values and finds an entry in constant time on average."),
        ("Binary search", "Binary search finds an item in a sorted array by halving the search interval each step."),
        ("Mount Everest", "Mount Everest is Earth's highest mountain above sea level, in the Himalayas."),
        ("Amazon river", "The Amazon is the largest river in the world by discharge of water and flows through Brazil."),
        ("Sahara", "The Sahara is the largest hot desert in the world, covering much of North Africa."),
        ("Pacific Ocean", "The Pacific is the largest and deepest of Earth's oceans."),
        ("Great Barrier Reef", "The Great Barrier Reef off Australia is the world's largest coral reef system."),
        ("Bread baking", "Bread rises because yeast ferments sugars and releases carbon dioxide gas in the dough."),
        ("Espresso", "Espresso is coffee brewed by forcing hot water through finely ground beans under pressure."),
        ("Green tea", "Green tea is made from leaves that are not oxidised, unlike black tea."),
        ("Sourdough", "Sourdough bread uses a starter of wild yeast and lactic acid bacteria instead of commercial yeast."),
        ("Olive oil", "Olive oil is pressed from olives and is a staple fat of Mediterranean cooking."),
        ("Football", "Association football is played by two teams of eleven players who try to score goals with a ball."),
        ("Tennis", "In tennis, players hit a ball over a net with rackets; a match is won in sets."),
        ("Marathon", "A marathon is a long-distance running race of 42.195 kilometres."),
        ("Chess", "Chess is a strategy board game for two players on a board of sixty-four squares."),
        ("Olympic Games", "The modern Olympic Games are held every four years and gather athletes from many nations."),
        ("Moon landing", "Apollo 11 landed the first humans on the Moon in July 1969."),
        ("Mars", "Mars is the fourth planet from the Sun and is called the Red Planet for its iron oxide dust."),
        ("Black holes", "A black hole is a region of spacetime where gravity is so strong that not even light escapes."),
        ("Jupiter", "Jupiter is the largest planet in the Solar System, a gas giant with a great red storm."),
        ("Solar eclipse", "A solar eclipse happens when the Moon passes between the Earth and the Sun."),
        ("Printing press", "Johannes Gutenberg's printing press with movable type spread books across Europe."),
        ("Steam engine", "The steam engine powered the Industrial Revolution, driving factories and locomotives."),
        ("Telephone", "Alexander Graham Bell is credited with patenting the first practical telephone in 1876."),
        ("Internet", "The Internet is a global network of computer networks that exchange data using TCP/IP."),
        ("Electric light", "Thomas Edison developed a long-lasting incandescent light bulb for homes."),
        ("Piano", "The piano is a keyboard instrument whose hammers strike strings when keys are pressed."),
        ("Violin", "The violin is a bowed string instrument with four strings tuned in fifths."),
        ("Jazz", "Jazz is a music genre that began in New Orleans, known for swing and improvisation."),
        ("Beethoven", "Ludwig van Beethoven composed nine symphonies and kept writing after he lost his hearing."),
        ("Opera", "Opera is a drama set to music, sung by singers with an orchestra."),
        ("Honeybees", "Honeybees pollinate flowers and make honey from nectar stored in wax combs."),
        ("Penguins", "Penguins are flightless seabirds that live mostly in the Southern Hemisphere."),
        ("Elephants", "Elephants are the largest land animals and use their trunks to grab food and water."),
        ("Octopus", "An octopus has eight arms, three hearts and can change colour to hide."),
        ("Wolves", "Wolves live and hunt in packs led by a breeding pair."),
    ];

    /// <summary>Queries with their relevant passage indices.</summary>
    public static readonly (string Query, int[] Relevant)[] Queries =
    [
        ("what is the capital of France", [0]),
        ("capital city of Germany", [1]),
        ("how do plants make food from sunlight", [5, 6]),
        ("which organelle produces energy in cells", [7]),
        ("what carries genetic information", [8]),
        ("programming language with readable syntax", [10]),
        ("how does automatic memory management work", [12]),
        ("fast lookup of a value by key", [13]),
        ("highest mountain on Earth", [15]),
        ("largest desert", [17]),
        ("why does bread dough rise", [20, 23]),
        ("how is espresso coffee made", [21]),
        ("how long is a marathon race", [27]),
        ("first people to walk on the Moon", [30]),
        ("why is Mars red", [31]),
        ("who invented the telephone", [37]),
        ("which composer went deaf", [43]),
        ("music genre born in New Orleans", [42]),
        ("animals that make honey", [45]),
        ("bird that cannot fly and lives in Antarctica", [46]),
    ];

    public static string KeyText(int passage) => $"{Passages[passage].Title} {Passages[passage].Text}";

    /// <summary>FlagEmbedding layout: eval.jsonl {query, pos_index, query_id} and corpus.jsonl {title, text}.</summary>
    public static (string EvalData, string Corpus) WriteFlagEmbedding(string dir)
    {
        var corpus = Path.Combine(dir, "corpus.jsonl");
        File.WriteAllLines(corpus, Passages.Select(p => JsonSerializer.Serialize(new { title = p.Title, text = p.Text })));
        var evalData = Path.Combine(dir, "eval.jsonl");
        File.WriteAllLines(evalData, Queries.Select((q, i) => JsonSerializer.Serialize(new { query = q.Query, pos_index = q.Relevant, query_id = i })));
        return (evalData, corpus);
    }

    /// <summary>BEIR layout of the same data: corpus ids "doc{i}", query ids "q{i}", qrels/test.tsv with a header.</summary>
    public static string WriteBeir(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "qrels"));
        File.WriteAllLines(Path.Combine(dir, "corpus.jsonl"),
            Passages.Select((p, i) => JsonSerializer.Serialize(new Dictionary<string, string> { ["_id"] = $"doc{i}", ["title"] = p.Title, ["text"] = p.Text })));
        File.WriteAllLines(Path.Combine(dir, "queries.jsonl"),
            Queries.Select((q, i) => JsonSerializer.Serialize(new Dictionary<string, string> { ["_id"] = $"q{i}", ["text"] = q.Query })));
        File.WriteAllLines(Path.Combine(dir, "qrels", "test.tsv"),
            ["query-id\tcorpus-id\tscore", .. Queries.SelectMany((q, i) => q.Relevant.Select(r => $"q{i}\tdoc{r}\t1"))]);
        return dir;
    }
}
