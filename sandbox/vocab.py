"""Word lists and reference tables the synthetic org is drawn from (data, not logic)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIVITY_TYPES",
    "BRAND_STEMS",
    "COUNTRIES",
    "DESCRIPTORS",
    "FIRST_NAMES",
    "FREEMAIL_DOMAINS",
    "INDUSTRIES",
    "JP_DESCRIPTORS",
    "JP_STEMS",
    "JUNK_COMPANIES",
    "LAST_NAMES",
    "PRODUCT_LINES",
    "REGIONS",
    "SECOND_STEMS",
    "SUBSIDIARY_WORDS",
    "TITLES",
    "TOPICS",
    "ActivityType",
    "Country",
    "Industry",
]


@dataclass(frozen=True)
class Country:
    """A country accounts can sit in, with how its companies are named and where they live."""

    code: str
    name: str
    region: str
    weight: float
    tld: str
    legal_suffixes: tuple[str, ...]
    cities: tuple[str, ...]
    names: str  # key into FIRST_NAMES / LAST_NAMES
    phone_code: str


@dataclass(frozen=True)
class Industry:
    """An industry and its hidden effect on how likely its accounts are to buy."""

    name: str
    weight: float
    fit_effect: float


@dataclass(frozen=True)
class ActivityType:
    """An activity type key, its intent class and whether it carries a content topic."""

    key: str
    intent: str  # high | medium | passive | rep
    has_topic: bool = False


REGIONS: tuple[str, ...] = ("NA", "EMEA", "APAC", "LATAM")

COUNTRIES: tuple[Country, ...] = (
    Country("US", "United States", "NA", 0.36, "com", ("Inc.", "LLC", "Corp.", "Corporation"),
            ("New York", "San Francisco", "Austin", "Chicago", "Boston", "Seattle"), "en", "1"),
    Country("CA", "Canada", "NA", 0.04, "ca", ("Inc.", "Ltd.", "Corp."),
            ("Toronto", "Montréal", "Vancouver", "Québec"), "en", "1"),
    Country("GB", "United Kingdom", "EMEA", 0.10, "co.uk", ("Ltd", "PLC", "Limited"),
            ("London", "Manchester", "Edinburgh", "Bristol"), "en", "44"),
    Country("DE", "Germany", "EMEA", 0.08, "de", ("GmbH", "AG", "GmbH & Co. KG"),
            ("München", "Berlin", "Köln", "Düsseldorf", "Hamburg"), "de", "49"),
    Country("CH", "Switzerland", "EMEA", 0.02, "ch", ("AG", "SA", "GmbH"),
            ("Zürich", "Genève", "Basel", "Lausanne"), "de", "41"),
    Country("FR", "France", "EMEA", 0.05, "fr", ("SA", "SAS", "SARL"),
            ("Paris", "Lyon", "Besançon", "Orléans"), "fr", "33"),
    Country("NL", "Netherlands", "EMEA", 0.03, "nl", ("B.V.", "N.V."),
            ("Amsterdam", "Rotterdam", "Utrecht"), "nl", "31"),
    Country("SE", "Sweden", "EMEA", 0.02, "se", ("AB",),
            ("Stockholm", "Göteborg", "Malmö"), "nordic", "46"),
    Country("ES", "Spain", "EMEA", 0.02, "es", ("S.L.", "S.A."),
            ("Madrid", "Barcelona", "Málaga", "A Coruña"), "es", "34"),
    Country("PL", "Poland", "EMEA", 0.01, "pl", ("Sp. z o.o.", "S.A."),
            ("Warszawa", "Kraków", "Łódź"), "pl", "48"),
    Country("BR", "Brazil", "LATAM", 0.04, "com.br", ("Ltda.", "S.A."),
            ("São Paulo", "Rio de Janeiro", "Belo Horizonte", "Florianópolis"), "pt", "55"),
    Country("MX", "Mexico", "LATAM", 0.015, "com.mx", ("S.A. de C.V.", "S. de R.L."),
            ("Ciudad de México", "Monterrey", "Guadalajara"), "es", "52"),
    Country("CO", "Colombia", "LATAM", 0.01, "com.co", ("S.A.S.", "S.A."),
            ("Bogotá", "Medellín"), "es", "57"),
    Country("JP", "Japan", "APAC", 0.04, "co.jp", ("K.K.", "株式会社", "Co., Ltd."),
            ("東京", "大阪", "Yokohama", "名古屋"), "ja", "81"),
    Country("IN", "India", "APAC", 0.04, "in", ("Pvt. Ltd.", "Ltd."),
            ("Bengaluru", "Mumbai", "Pune", "Hyderabad"), "in", "91"),
    Country("AU", "Australia", "APAC", 0.03, "com.au", ("Pty Ltd", "Ltd"),
            ("Sydney", "Melbourne", "Brisbane"), "en", "61"),
    Country("SG", "Singapore", "APAC", 0.02, "sg", ("Pte. Ltd.",),
            ("Singapore",), "en", "65"),
    Country("RU", "Russia", "EMEA", 0.006, "ru", ("OOO", "AO"),
            ("Moscow", "Saint Petersburg"), "ru", "7"),
    Country("IR", "Iran", "EMEA", 0.002, "ir", ("Co.",),
            ("Tehran",), "en", "98"),
    Country("CU", "Cuba", "LATAM", 0.001, "cu", ("S.A.",),
            ("La Habana",), "es", "53"),
)

INDUSTRIES: tuple[Industry, ...] = (
    Industry("Software", 0.18, 0.8),
    Industry("Fintech", 0.08, 0.9),
    Industry("Insurance", 0.05, 0.4),
    Industry("Healthcare", 0.09, 0.3),
    Industry("Biotech", 0.04, 0.3),
    Industry("Manufacturing", 0.12, 0.0),
    Industry("Retail", 0.09, -0.2),
    Industry("Logistics", 0.06, 0.1),
    Industry("Telecommunications", 0.04, 0.3),
    Industry("Energy", 0.04, 0.2),
    Industry("Media", 0.05, -0.1),
    Industry("Education", 0.07, -0.5),
    Industry("Government", 0.05, -0.8),
    Industry("Nonprofit", 0.04, -0.9),
)

TOPICS: tuple[str, ...] = ("security", "integrations", "compliance", "ai", "analytics")

PRODUCT_LINES: tuple[str, ...] = ("Core Platform", "Security Suite", "Analytics", "Integrations")

ACTIVITY_TYPES: tuple[ActivityType, ...] = (
    ActivityType("demo_request", "high"),
    ActivityType("pricing_page", "high"),
    ActivityType("trial_signup", "high"),
    ActivityType("contact_sales", "high"),
    ActivityType("webinar", "medium", has_topic=True),
    ActivityType("case_study", "medium", has_topic=True),
    ActivityType("product_page", "medium"),
    ActivityType("whitepaper", "medium", has_topic=True),
    ActivityType("blog_visit", "passive", has_topic=True),
    ActivityType("email_open", "passive"),
    ActivityType("email_click", "passive"),
    ActivityType("call", "rep"),
    ActivityType("email", "rep"),
    ActivityType("meeting", "rep"),
)

BRAND_STEMS: tuple[str, ...] = (
    "Acme", "Nova", "Blue", "Red", "Green", "Silver", "Golden", "Bright", "Swift", "Iron", "Stone",
    "River", "Ocean", "North", "South", "East", "West", "Summit", "Pioneer", "Apex", "Vertex",
    "Zenith", "Quantum", "Stellar", "Lunar", "Solar", "Polar", "Alpine", "Cedar", "Maple", "Oak",
    "Pine", "Willow", "Aspen", "Birch", "Falcon", "Eagle", "Hawk", "Raven", "Wolf", "Bear", "Fox",
    "Lynx", "Tiger", "Lion", "Orca", "Dolphin", "Crystal", "Amber", "Coral", "Jade", "Onyx", "Ruby",
    "Sapphire", "Emerald", "Cobalt", "Copper", "Titan", "Atlas", "Orion", "Vega", "Sirius", "Nimbus",
    "Cirrus", "Aurora", "Horizon", "Meridian", "Prime", "Vector", "Pixel", "Byte", "Logic", "Nexus",
    "Matrix", "Fusion", "Catalyst", "Kinetic", "Dynamo", "Velocity", "Momentum", "Harbor", "Bridge",
    "Beacon", "Lighthouse", "Compass", "Anchor", "Sterling", "Noble", "Royal", "Crown", "Liberty",
    "Unity", "Harmony", "Insight", "Clarity", "Vivid", "Bold", "True", "Clear", "Open", "Smart",
    "Agile", "Rapid", "Micro", "Mega", "Hyper", "Ultra", "Omni", "Pan", "Trans", "Inter", "Meta",
    "Neo", "Terra", "Aqua", "Pyro", "Aero", "Astro", "Cosmo", "Geo", "Bio", "Eco", "Helix", "Spiral",
    "Prism", "Spectrum", "Radiant", "Lumen", "Ember", "Blaze", "Frost", "Glacier", "Tundra",
    "Canyon", "Mesa", "Delta", "Sigma", "Omega", "Alpha", "Gamma", "Kappa", "Élan", "Lumière",
    "Søren", "Björk", "Nördlicht", "Señora", "Açores", "Zürcher", "Ørsted", "Kraków",
)

SECOND_STEMS: tuple[str, ...] = (
    "Orbit", "Peak", "Wave", "Point", "Path", "Gate", "Field", "Forge", "Works", "Line", "Core",
    "Base", "Stack", "Cloud", "Loop", "Link", "Shift", "Spark", "Flow", "Stream", "Grid", "Mark",
    "Mind", "Sense", "Scope", "Sight", "View", "Vision", "Quest", "Trail", "Ridge", "Crest", "Vale",
    "Brook", "Bay", "Port", "Haven", "Rock", "Hill", "Wood", "Leaf", "Root", "Seed", "Bloom", "Star",
    "Sky", "Sun", "Moon", "Light", "Fire", "Storm", "Wind", "Rain", "Snow", "Tide", "Current", "Pulse",
    "Beat", "Tone", "Note", "Key", "Lock", "Shield", "Guard", "Keep", "Tower", "Hall", "Yard", "Mill",
    "Craft", "Smith", "Wright", "Mason", "Ward", "Well", "Spring", "Lake", "Pond", "Isle", "Land",
    "Ville", "Town", "Hub", "Nest", "Hive", "Den", "Lab", "Tek", "Tech", "Soft", "Ware", "Net", "Data",
    "Logic", "Metric", "Signal", "Vault", "Bolt", "Arc", "Axis", "Node", "Edge", "Frame", "Plex",
    "Verse", "Scape", "Sphere", "Zone", "Cast", "Pilot",
)

DESCRIPTORS: tuple[str, ...] = (
    "Systems", "Analytics", "Labs", "Health", "Logistics", "Software", "Networks", "Dynamics",
    "Partners", "Group", "Technologies", "Solutions", "Capital", "Foods", "Energy", "Media",
    "Robotics", "Security", "Data", "Consulting", "Industries", "Holdings", "Ventures", "Digital",
    "Interactive", "Manufacturing", "Pharma", "Therapeutics", "Insurance", "Payments", "Bank",
    "Finance", "Retail", "Apparel", "Motors", "Aerospace", "Marine", "Telecom", "Learning",
    "Education", "Studios", "Games", "Foundation", "Services", "Engineering", "Materials",
    "Chemicals", "Devices", "Instruments", "Electronics",
)

JP_STEMS: tuple[tuple[str, str], ...] = (
    ("サクラ", "sakura"), ("ミドリ", "midori"), ("ヒカリ", "hikari"), ("アサヒ", "asahi"),
    ("ソラ", "sora"), ("ウミ", "umi"), ("ヤマ", "yama"), ("カワ", "kawa"), ("ホシ", "hoshi"),
    ("ツキ", "tsuki"), ("カゼ", "kaze"), ("ハナ", "hana"), ("モリ", "mori"), ("イズミ", "izumi"),
    ("タイヨウ", "taiyou"), ("ミライ", "mirai"), ("ニジ", "niji"), ("コスモ", "cosmo"),
    ("アオバ", "aoba"), ("ワカバ", "wakaba"), ("シズク", "shizuku"), ("ハヤテ", "hayate"),
    ("ツバサ", "tsubasa"), ("アカツキ", "akatsuki"), ("イナホ", "inaho"), ("カエデ", "kaede"),
    ("スズラン", "suzuran"), ("トキワ", "tokiwa"), ("ユウヒ", "yuuhi"), ("ナギサ", "nagisa"),
)

JP_DESCRIPTORS: tuple[tuple[str, str, str], ...] = (
    ("システムズ", "systems", "Systems"), ("テクノロジー", "technology", "Technology"),
    ("ラボ", "labs", "Labs"), ("データ", "data", "Data"), ("ネットワークス", "networks", "Networks"),
    ("ソリューションズ", "solutions", "Solutions"), ("ヘルス", "health", "Health"),
    ("ロジスティクス", "logistics", "Logistics"), ("メディア", "media", "Media"),
    ("エナジー", "energy", "Energy"), ("工業", "kogyo", "Industries"), ("商事", "shoji", "Trading"),
)

SUBSIDIARY_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("UK", "Europe", "International", "Digital", "Labs", "Services"),
    "de": ("Deutschland", "Europa", "Digital", "Labs"),
    "fr": ("France", "Europe", "Digital"),
    "nl": ("Nederland", "Benelux"),
    "nordic": ("Nordic", "Sverige"),
    "es": ("España", "Iberia", "Latam"),
    "pl": ("Polska",),
    "pt": ("Brasil", "Latam"),
    "ja": ("Japan", "Japan Holdings"),
    "in": ("India", "Global Services"),
    "ru": ("Rus",),
}

FIRST_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    # (display, ASCII form used in email addresses)
    "en": (("James", "james"), ("Mary", "mary"), ("John", "john"), ("Patricia", "patricia"),
           ("Robert", "robert"), ("Jennifer", "jennifer"), ("Michael", "michael"), ("Linda", "linda"),
           ("David", "david"), ("Sarah", "sarah"), ("Chris", "chris"), ("Emily", "emily"),
           ("Daniel", "daniel"), ("Jessica", "jessica"), ("Matthew", "matthew"), ("Ashley", "ashley"),
           ("Zoë", "zoe"), ("Chloé", "chloe"), ("Liam", "liam"), ("Olivia", "olivia")),
    "de": (("Lukas", "lukas"), ("Jürgen", "juergen"), ("Anna", "anna"), ("Jörg", "joerg"),
           ("Katrin", "katrin"), ("Stefan", "stefan"), ("Sabine", "sabine"), ("Björn", "bjoern"),
           ("Uwe", "uwe"), ("Lena", "lena"), ("Maximilian", "maximilian"), ("Käthe", "kaethe")),
    "fr": (("François", "francois"), ("Amélie", "amelie"), ("Jérôme", "jerome"), ("Céline", "celine"),
           ("Hélène", "helene"), ("Pierre", "pierre"), ("Camille", "camille"), ("Noël", "noel")),
    "nl": (("Daan", "daan"), ("Sanne", "sanne"), ("Joost", "joost"), ("Femke", "femke")),
    "nordic": (("Søren", "soren"), ("Åsa", "asa"), ("Lars", "lars"), ("Ingrid", "ingrid"),
               ("Björn", "bjorn"), ("Maja", "maja")),
    "es": (("José", "jose"), ("María", "maria"), ("Javier", "javier"), ("Lucía", "lucia"),
           ("Andrés", "andres"), ("Sofía", "sofia"), ("Ramón", "ramon")),
    "pl": (("Łukasz", "lukasz"), ("Agnieszka", "agnieszka"), ("Paweł", "pawel"), ("Zofia", "zofia")),
    "pt": (("João", "joao"), ("Ana", "ana"), ("Gonçalo", "goncalo"), ("Beatriz", "beatriz"),
           ("Luís", "luis"), ("Fernanda", "fernanda")),
    "ja": (("翔太", "shota"), ("美咲", "misaki"), ("Haruto", "haruto"), ("Yui", "yui"),
           ("健", "ken"), ("Sakura", "sakura")),
    "in": (("Aarav", "aarav"), ("Priya", "priya"), ("Rahul", "rahul"), ("Ananya", "ananya"),
           ("Vikram", "vikram"), ("Deepika", "deepika")),
    "ru": (("Ivan", "ivan"), ("Olga", "olga"), ("Dmitri", "dmitri"), ("Natalia", "natalia")),
}

LAST_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "en": (("Smith", "smith"), ("Johnson", "johnson"), ("Williams", "williams"), ("Brown", "brown"),
           ("Jones", "jones"), ("Garcia", "garcia"), ("Miller", "miller"), ("Davis", "davis"),
           ("Wilson", "wilson"), ("Taylor", "taylor"), ("Clark", "clark"), ("Lewis", "lewis"),
           ("O'Brien", "obrien"), ("Nguyen", "nguyen"), ("Patel", "patel"), ("Kim", "kim")),
    "de": (("Müller", "mueller"), ("Schmidt", "schmidt"), ("Schneider", "schneider"),
           ("Fischer", "fischer"), ("Weiß", "weiss"), ("Becker", "becker"), ("Schäfer", "schaefer"),
           ("Köhler", "koehler")),
    "fr": (("Dubois", "dubois"), ("Lefèvre", "lefevre"), ("Moreau", "moreau"), ("Girard", "girard"),
           ("Bérénger", "berenger"), ("Laurent", "laurent")),
    "nl": (("de Vries", "devries"), ("Jansen", "jansen"), ("van Dijk", "vandijk"), ("Bakker", "bakker")),
    "nordic": (("Andersson", "andersson"), ("Johansson", "johansson"), ("Nørgaard", "norgaard"),
               ("Lindström", "lindstrom")),
    "es": (("García", "garcia"), ("Martínez", "martinez"), ("López", "lopez"), ("Sánchez", "sanchez"),
           ("Pérez", "perez"), ("Núñez", "nunez")),
    "pl": (("Kowalski", "kowalski"), ("Wiśniewska", "wisniewska"), ("Wójcik", "wojcik"),
           ("Zieliński", "zielinski")),
    "pt": (("Silva", "silva"), ("Santos", "santos"), ("Conceição", "conceicao"), ("Araújo", "araujo"),
           ("Gonçalves", "goncalves")),
    "ja": (("佐藤", "sato"), ("鈴木", "suzuki"), ("Takahashi", "takahashi"), ("田中", "tanaka"),
           ("Watanabe", "watanabe")),
    "in": (("Sharma", "sharma"), ("Iyer", "iyer"), ("Reddy", "reddy"), ("Gupta", "gupta"),
           ("Nair", "nair")),
    "ru": (("Ivanov", "ivanov"), ("Petrova", "petrova"), ("Smirnov", "smirnov")),
}

TITLES: tuple[tuple[str, float], ...] = (
    ("Chief Technology Officer", 0.04), ("Chief Information Security Officer", 0.03),
    ("VP Engineering", 0.05), ("VP Operations", 0.04), ("Head of IT", 0.06),
    ("Director of Security", 0.04), ("IT Manager", 0.08), ("Engineering Manager", 0.07),
    ("Software Engineer", 0.12), ("Data Analyst", 0.08), ("Operations Manager", 0.07),
    ("Procurement Manager", 0.04), ("Marketing Manager", 0.06), ("CFO", 0.03),
    ("Student", 0.03), ("Intern", 0.02), ("Recruiter", 0.02), ("Consultant", 0.05),
    ("Account Executive", 0.03), ("", 0.04),
)

FREEMAIL_DOMAINS: tuple[str, ...] = (
    "gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "aol.com", "gmx.de",
    "web.de", "yahoo.co.jp", "orange.fr", "proton.me", "qq.com", "mail.ru", "uol.com.br",
    "hotmail.co.uk", "live.com",
)

JUNK_COMPANIES: tuple[str, ...] = ("n/a", "-", "Self", "none", "Unknown", "Freelance", "Student", "?")
