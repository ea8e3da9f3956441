import { describe, expect, it } from '@jest/globals';
import { redactPii } from '../src/content-filter/pii-redaction.js';

/** What leaves the EU on a route that redacts: personal data gone, everything else as the user wrote it. */
describe('PII redaction', () => {
  it.each([
    ['0170 1234567', '[phone]'],
    ['030 12345678', '[phone]'],
    ['030/1234567', '[phone]'],
    ['(030) 123 456 78', '[phone]'],
    ['01701234567', '[phone]'],
    ['+49.30.1234567', '[phone]'],
    ['Ruf +49 170 1234567 an', 'Ruf [phone] an'],
    ['0049 30 1234567', '[phone]'],
    ['+41 44 668 18 00', '[phone]'],
    ['DE89  3704  0044  0532  0130  00', '[iban]'],
    ['de89370400440532013000', '[iban]'],
    ['DE 89 3704 0044 0532 0130 00', '[iban]'],
    ['IBAN DE89 3704 0044 0532 0130 00 und dann', 'IBAN [iban] und dann'],
    ['AT61 1904 3002 3457 3201', '[iban]'],
    ['4111.1111.1111.1111', '[card]'],
    ['4111  1111  1111  1111', '[card]'],
    ['4111-1111-1111-1111', '[card]'],
    ['Karte 4111111111111111.', 'Karte [card].'],
    ['3782 822463 10005', '[card]'],
    ['info@müller.de', '[email]'],
    ['jürgen.müller@example.de', '[email]'],
    ['Schreib an anna@example.eu!', 'Schreib an [email]!'],
    ['git@github.com', '[email]'],
    // Pasted in NFD: "ü" as u + a combining diaeresis.
    ['ju\u0308rgen.mu\u0308ller@example.de', '[email]'],
    // No-break spaces, as web pages write numbers.
    ['+49\u00a0170\u00a01234567', '[phone]'],
    ['DE89\u00a03704\u00a00044\u00a00532\u00a00130\u00a000', '[iban]'],
    ['4111\u202f1111\u202f1111\u202f1111', '[card]'],
    // A false candidate before a real one does not hide it.
    ['Ab 2024 gilt die IBAN DE89 3704 0044 0532 0130 00', 'Ab 2024 gilt die IBAN [iban]'],
    ['Nr 12 DE89 3704 0044 0532 0130 00', 'Nr 12 [iban]'],
    ['Bestellung 1234 4111 1111 1111 1111', 'Bestellung 1234 [card]'],
    ['4111 1111 1111 1111 123', '[card] 123'],
    ['4111 1111 1111 1111 12/27', '[card] 12/27'],
    ['Tel. 0170 1234567 0170 7654321', 'Tel. [phone] [phone]'],
    ['0049 170 1234567 0049 170 7654321', '[phone] [phone]'],
    ['DE89 3704 0044 0532 0130 00 0170 1234567', '[iban] [phone]'],
    ['IBAN DE89 3704 0044 0532 0130 00 BIC COBADEFFXXX', 'IBAN [iban] BIC COBADEFFXXX'],
    ['GB82 WEST 1234 5698 7654 32', '[iban]'],
    // Written straight after an abbreviation, or with separators spaced out.
    ['Nr.4111 1111 1111 1111', 'Nr.[card]'],
    ['Tel.0170 1234567', 'Tel.[phone]'],
    ['4111   1111   1111   1111', '[card]'],
    ['4111 - 1111 - 1111 - 1111', '[card]'],
    ['0170 / 1234567', '[phone]'],
    ['030 - 1234567', '[phone]'],
    ['+49 (0)30 1234567', '[phone]'],
    ['(+49) 170 1234567', '[phone]'],
    ['(0170 1234567)', '([phone])'],
    ['+1 (555) 123-4567', '[phone]'],
    ['0043 664 1234567', '[phone]'],
    ['044 668 18 00', '[phone]'],
    // As word processors, web pages and other keyboards write them: dashes, Unicode spaces, tabs, a line break,
    // invisible characters inside, full-width forms.
    ['0170 \u2013 1234567', '[phone]'],
    ['+49\u2009170\u20091234567', '[phone]'],
    ['+49\t170\t1234567', '[phone]'],
    ['+49\u2212170\u22121234567', '[phone]'],
    ['0170\u2011123\u20114567', '[phone]'],
    ['030\u00ad1234567', '[phone]'],
    ['Tel.: +49 170\n1234567', 'Tel.: [phone]'],
    ['+49\u3000１７０\u3000１２３４５６７', '[phone]'],
    ['DE89-3704-0044-0532-0130-00', '[iban]'],
    ['DE89\u20133704\u20130044\u20130532\u20130130\u201300', '[iban]'],
    ['DE89 3704 0044\n0532 0130 00', '[iban]'],
    ['DE89 3704 0044\r\n0532 0130 00', '[iban]'],
    ['ＤＥ８９ ３７０４ ００４４ ０５３２ ０１３０ ００', '[iban]'],
    ['4111\u20131111\u20131111\u20131111', '[card]'],
    ['4111\u200b1111\u200b1111\u200b1111', '[card]'],
    ['４１１１ １１１１ １１１１ １１１１', '[card]'],
    ['4111 1111\n1111 1111', '[card]'],
    ['anna@exa\u200bmple.eu', '[email]'],
    ['ａｎｎａ＠ｅｘａｍｐｌｅ．ｅｕ', '[email]'],
    ['anna\u2060@example.eu', '[email]'],
    // A line break ends a number that is whole before it: the next line is not taken with it.
    ['Tel. 030 1234567\n2. Schritt', 'Tel. [phone]\n2. Schritt'],
    ['Tel.: 030 1234567\n10117 Berlin', 'Tel.: [phone]\n10117 Berlin'],
    ['4111 1111 1111 1111\n2. Karte', '[card]\n2. Karte'],
    // Only what is found is replaced: the rest as written, invisible characters and compatibility forms too.
    ['\u200banna@example.eu\u200b', '\u200b[email]\u200b'],
    ['Grüße ① 5 m² ﬁ 👨\u200d👩\u200d👧 می\u200cخواهم: ０１７０ １２３４５６７!', 'Grüße ① 5 m² ﬁ 👨\u200d👩\u200d👧 می\u200cخواهم: [phone]!'],
  ])('redacts %s', (text, redacted) => {
    expect(redactPii(text)).toBe(redacted);
  });

  it.each([
    'ISBN 978-3-16-148410-0',
    '1700000000000',
    '2024-01-15 2024-02-20',
    'am 01.02.2024 um 10:30',
    '100 200 300 400 500',
    '0800 1200 1300 1800',
    'Saisons 2005 2006 2007',
    '1000 2000 3000 EUR',
    'RX78 GP01 GP02 GP03',
    'AB12 CD34 EF56',
    'GB12 SOME TEXT HERE',
    '4111 1111 1111 1112',
    'Version 1.2.3, Bestellnummer 12345678, PLZ 01067 Dresden, intern 0815',
    // Luhn-valid, but a millisecond timestamp: cards begin with 2–6.
    'Zeitstempel 1700000000004',
    'am 01/02/2024 oder 01-02-2024',
    'PLZ 01067 01069 01097',
    'Seiten 01 02 03 04 05',
    '00 11 22 33 44',
    'Preis 1.299,00 EUR, 1 000 000 EUR',
    'Tracking 00340434161094042557',
    'user@localhost',
    // Dashes, Unicode spaces, tabs and line breaks widen what is read as a number, not what is taken as one.
    'ISBN 978\u20103\u201016\u2010148410\u20100',
    'ISBN 978\u20133\u201316\u2013148410\u20130',
    '2024\u201301\u201315 bis 2024\u201302\u201320',
    'am 03\u201312\u20132024 oder 03.12.2024\u201305.12.2024',
    'Saisons 1999\u20132004, 2005\u20132010',
    'Saisons 2005\t2006\t2007\t2008',
    '2024\n2025\n2026\n2027',
    'Preis 1\u2009299,00 €, 1\u2009000\u2009000 €',
    '10\u201312 Uhr, Seiten 12\u201315, \u221212 °C bis \u22123 °C',
    '4111\u20131111\u20131111\u20131112',
    'DE88-3704-0044-0532-0130-00',
    '２０２４－０１－１５',
    'RX78\u2013GP01\u2013GP02\u2013GP03',
    'Bestellnummer 12345678\n87654321',
    'PLZ\t01067\t01069',
    'Zeilen:\n100\n200\n300\n400',
    'Tel. intern\n0815',
    'anna\u200b@\u200b',
  ])('leaves %s as written', (text) => {
    expect(redactPii(text)).toBe(text);
  });

  it('reads long runs of what patterns look for and leaves them as they are', () => {
    // An address pattern took 10-12 s on 100,000 letters, a phone pattern with adjacent digit groups 8 s on the last run:
    // each now takes milliseconds (jest's own time limit would end a relapse).
    const runs = ['0'.repeat(100_000), 'a'.repeat(100_000), '+1'.repeat(50_000), '1 '.repeat(50_000), 'a@'.repeat(50_000), '00 '.repeat(33_334), ('+1' + '1'.repeat(45) + 'a ').repeat(2_000)];
    // The same read through normalisation and the wider separators: full-width, invisible, dashes, tabs, line breaks.
    runs.push('０'.repeat(100_000), '\u200b'.repeat(100_000), '1\u2013'.repeat(50_000), '1\t'.repeat(50_000), '0\n'.repeat(50_000), '4111' + ' \u2013'.repeat(50_000), 'DE89-'.repeat(20_000));
    for (const run of runs) expect(redactPii(run)).toBe(run);
  });
});
