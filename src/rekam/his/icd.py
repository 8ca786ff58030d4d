"""ICD-10 diagnosis codes and ICD-9-CM procedure codes: format checks and common codes.

Formats accepted (after trimming, upper-casing and dropping inner spaces):

* **ICD-10** (WHO, as used by BPJS Kesehatan and the puskesmas SP2TP/SIMPUS reports): a letter,
  two digits, and optionally a dot and one to two further characters (``I10``, ``E11.9``,
  ``S52.50``). A code written without its dot (``E119``) is given one.
* **ICD-9-CM volume 3** (procedures, as used in INA-CBG claims): two digits, optionally a dot and
  one or two digits (``99``, ``96.6``, ``89.52``). A code written without its dot (``8952``) is
  given one.

The tables below hold codes frequent in Indonesian primary care with their Indonesian and English
names, for pick lists and labels. A code of a valid format that is not in a table is still
accepted: the tables are a convenience, not the whole classification.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from rekam.his.errors import ValidationFailed

ICD10_FORMAT = re.compile(r"^[A-Z][0-9]{2}(?:\.[0-9A-Z]{1,2})?$")
ICD9CM_FORMAT = re.compile(r"^[0-9]{2}(?:\.[0-9]{1,2})?$")


class CodeName(NamedTuple):
    id: str
    en: str


ICD10_COMMON: dict[str, CodeName] = {
    "A09": CodeName(
        "Diare dan gastroenteritis yang diduga infeksi",
        "Diarrhoea and gastroenteritis of presumed infectious origin",
    ),
    "A01.0": CodeName("Demam tifoid", "Typhoid fever"),
    "A15.0": CodeName(
        "Tuberkulosis paru, terkonfirmasi bakteriologis",
        "Tuberculosis of lung, bacteriologically confirmed",
    ),
    "A90": CodeName("Demam dengue", "Dengue fever"),
    "A91": CodeName("Demam berdarah dengue", "Dengue haemorrhagic fever"),
    "B35.4": CodeName("Tinea korporis", "Tinea corporis"),
    "B86": CodeName("Skabies", "Scabies"),
    "D64.9": CodeName("Anemia, tidak spesifik", "Anaemia, unspecified"),
    "E11.9": CodeName(
        "Diabetes melitus tipe 2 tanpa komplikasi", "Type 2 diabetes mellitus without complications"
    ),
    "E78.5": CodeName("Hiperlipidemia, tidak spesifik", "Hyperlipidaemia, unspecified"),
    "E79.0": CodeName("Hiperurisemia tanpa gejala", "Hyperuricaemia without signs of disease"),
    "F41.1": CodeName("Gangguan cemas menyeluruh", "Generalized anxiety disorder"),
    "G43.9": CodeName("Migren, tidak spesifik", "Migraine, unspecified"),
    "G44.2": CodeName("Nyeri kepala tipe tegang", "Tension-type headache"),
    "H10.9": CodeName("Konjungtivitis, tidak spesifik", "Conjunctivitis, unspecified"),
    "H66.9": CodeName("Otitis media, tidak spesifik", "Otitis media, unspecified"),
    "I10": CodeName("Hipertensi esensial (primer)", "Essential (primary) hypertension"),
    "I11.9": CodeName(
        "Penyakit jantung hipertensi tanpa gagal jantung",
        "Hypertensive heart disease without heart failure",
    ),
    "I25.9": CodeName(
        "Penyakit jantung iskemik kronik", "Chronic ischaemic heart disease, unspecified"
    ),
    "I50.9": CodeName("Gagal jantung, tidak spesifik", "Heart failure, unspecified"),
    "I63.9": CodeName(
        "Infark serebral (stroke), tidak spesifik", "Cerebral infarction, unspecified"
    ),
    "J00": CodeName("Nasofaringitis akut (common cold)", "Acute nasopharyngitis (common cold)"),
    "J02.9": CodeName("Faringitis akut, tidak spesifik", "Acute pharyngitis, unspecified"),
    "J03.9": CodeName("Tonsilitis akut, tidak spesifik", "Acute tonsillitis, unspecified"),
    "J06.9": CodeName(
        "Infeksi saluran pernapasan atas akut (ISPA)",
        "Acute upper respiratory infection, unspecified",
    ),
    "J18.9": CodeName("Pneumonia, tidak spesifik", "Pneumonia, unspecified"),
    "J30.4": CodeName("Rinitis alergi, tidak spesifik", "Allergic rhinitis, unspecified"),
    "J44.9": CodeName(
        "Penyakit paru obstruktif kronik (PPOK)",
        "Chronic obstructive pulmonary disease, unspecified",
    ),
    "J45.9": CodeName("Asma, tidak spesifik", "Asthma, unspecified"),
    "K02.9": CodeName("Karies gigi, tidak spesifik", "Dental caries, unspecified"),
    "K04.0": CodeName("Pulpitis", "Pulpitis"),
    "K05.1": CodeName("Gingivitis kronik", "Chronic gingivitis"),
    "K21.9": CodeName(
        "Penyakit refluks gastroesofagus (GERD)",
        "Gastro-oesophageal reflux disease without oesophagitis",
    ),
    "K29.7": CodeName("Gastritis, tidak spesifik", "Gastritis, unspecified"),
    "K30": CodeName("Dispepsia fungsional", "Functional dyspepsia"),
    "K59.0": CodeName("Konstipasi", "Constipation"),
    "L02.9": CodeName(
        "Abses kulit, furunkel dan karbunkel",
        "Cutaneous abscess, furuncle and carbuncle, unspecified",
    ),
    "L20.9": CodeName("Dermatitis atopik, tidak spesifik", "Atopic dermatitis, unspecified"),
    "L23.9": CodeName("Dermatitis kontak alergi", "Allergic contact dermatitis, unspecified cause"),
    "L30.9": CodeName("Dermatitis, tidak spesifik", "Dermatitis, unspecified"),
    "L50.9": CodeName("Urtikaria, tidak spesifik", "Urticaria, unspecified"),
    "M10.9": CodeName("Gout (pirai), tidak spesifik", "Gout, unspecified"),
    "M17.9": CodeName("Osteoartritis lutut", "Gonarthrosis, unspecified"),
    "M54.5": CodeName("Nyeri punggung bawah", "Low back pain"),
    "M79.1": CodeName("Mialgia", "Myalgia"),
    "N39.0": CodeName("Infeksi saluran kemih", "Urinary tract infection, site not specified"),
    "O80": CodeName("Persalinan spontan tunggal", "Single spontaneous delivery"),
    "R05": CodeName("Batuk", "Cough"),
    "R10.4": CodeName("Nyeri perut lainnya", "Other and unspecified abdominal pain"),
    "R50.9": CodeName("Demam, tidak spesifik", "Fever, unspecified"),
    "R51": CodeName("Sakit kepala", "Headache"),
    "T14.1": CodeName(
        "Luka terbuka, regio tidak spesifik", "Open wound of unspecified body region"
    ),
    "Z00.0": CodeName("Pemeriksaan kesehatan umum", "General medical examination"),
    "Z34.9": CodeName(
        "Pengawasan kehamilan normal", "Supervision of normal pregnancy, unspecified"
    ),
    "Z23": CodeName("Imunisasi", "Need for immunization against single bacterial diseases"),
    "Z30.0": CodeName("Konseling kontrasepsi", "General counselling and advice on contraception"),
}

ICD9CM_COMMON: dict[str, CodeName] = {
    "86.04": CodeName(
        "Insisi dan drainase kulit (abses)",
        "Other incision with drainage of skin and subcutaneous tissue",
    ),
    "86.22": CodeName("Debridemen luka", "Excisional debridement of wound, infection, or burn"),
    "86.59": CodeName(
        "Penjahitan luka (hecting)", "Closure of skin and subcutaneous tissue of other sites"
    ),
    "86.3": CodeName(
        "Eksisi lokal lesi kulit", "Other local excision or destruction of lesion of skin"
    ),
    "89.52": CodeName("Elektrokardiogram (EKG)", "Electrocardiogram"),
    "89.7": CodeName("Pemeriksaan fisik umum", "General physical examination"),
    "89.39": CodeName(
        "Pengukuran dan pemeriksaan non-operatif lainnya",
        "Other nonoperative measurements and examinations",
    ),
    "93.94": CodeName(
        "Terapi nebulisasi (nebulizer)", "Respiratory medication administered by nebulizer"
    ),
    "93.57": CodeName("Perawatan luka (ganti balutan)", "Application of other wound dressing"),
    "96.04": CodeName("Pemasangan pipa endotrakeal", "Insertion of endotracheal tube"),
    "96.07": CodeName("Pemasangan selang nasogastrik", "Insertion of other (naso-)gastric tube"),
    "96.52": CodeName("Irigasi telinga", "Irrigation of ear"),
    "96.6": CodeName(
        "Pemberian makanan enteral", "Enteral infusion of concentrated nutritional substances"
    ),
    "97.38": CodeName(
        "Pengangkatan jahitan (aff hecting)", "Removal of sutures from head and neck"
    ),
    "98.11": CodeName(
        "Pengambilan benda asing dari telinga",
        "Removal of intraluminal foreign body from ear without incision",
    ),
    "98.12": CodeName(
        "Pengambilan benda asing dari hidung",
        "Removal of intraluminal foreign body from nose without incision",
    ),
    "99.04": CodeName("Transfusi sel darah merah", "Transfusion of packed cells"),
    "99.18": CodeName("Injeksi elektrolit", "Injection or infusion of electrolytes"),
    "99.21": CodeName("Injeksi antibiotik", "Injection of antibiotic"),
    "99.23": CodeName("Injeksi steroid", "Injection of steroid"),
    "99.29": CodeName(
        "Injeksi atau infus zat terapeutik lainnya",
        "Injection or infusion of other therapeutic or prophylactic substance",
    ),
    "99.38": CodeName("Imunisasi tetanus toksoid", "Administration of tetanus toxoid"),
    "99.55": CodeName(
        "Imunisasi profilaksis lainnya",
        "Prophylactic administration of vaccine against other diseases",
    ),
    "99.60": CodeName(
        "Resusitasi jantung paru (RJP)", "Cardiopulmonary resuscitation, not otherwise specified"
    ),
    "23.09": CodeName("Pencabutan gigi", "Extraction of other tooth"),
    "23.2": CodeName("Penambalan gigi", "Restoration of tooth by filling"),
    "73.59": CodeName("Pertolongan persalinan normal", "Other manually assisted delivery"),
    "69.7": CodeName(
        "Pemasangan alat kontrasepsi dalam rahim (AKDR/IUD)", "Insertion of contraceptive device"
    ),
    "38.99": CodeName("Pungsi vena (pengambilan darah)", "Other puncture of vein"),
    "57.94": CodeName("Pemasangan kateter urin", "Insertion of indwelling urinary catheter"),
}


def _compact(code: str) -> str:
    return "".join(code.split()).upper()


def normalise_icd10(code: str) -> str:
    """The code in its canonical form (``E119`` → ``E11.9``), or ValidationFailed."""
    compact = _compact(code)
    if len(compact) > 3 and "." not in compact:
        compact = f"{compact[:3]}.{compact[3:]}"
    if not ICD10_FORMAT.match(compact):
        raise ValidationFailed(
            "an ICD-10 code is a letter, two digits and optionally a dot and 1–2 characters "
            "(e.g. I10, E11.9)",
            field="code",
            key="icd10.format",
            value=code[:12],
        )
    return compact


def normalise_icd9cm(code: str) -> str:
    """The ICD-9-CM procedure code in canonical form (``8952`` → ``89.52``), or ValidationFailed."""
    compact = _compact(code)
    if len(compact) > 2 and "." not in compact:
        compact = f"{compact[:2]}.{compact[2:]}"
    if not ICD9CM_FORMAT.match(compact):
        raise ValidationFailed(
            "an ICD-9-CM procedure code is two digits and optionally a dot and 1–2 digits "
            "(e.g. 99.21, 89.52)",
            field="code",
            key="icd9cm.format",
            value=code[:12],
        )
    return compact


def icd10_name(code: str, language: str = "id") -> str | None:
    """The name of a common ICD-10 code in ``language`` ('id' or 'en'), if the table has it."""
    entry = ICD10_COMMON.get(code)
    return None if entry is None else (entry.en if language == "en" else entry.id)


def icd9cm_name(code: str, language: str = "id") -> str | None:
    entry = ICD9CM_COMMON.get(code)
    return None if entry is None else (entry.en if language == "en" else entry.id)
