// Reply sizes are checked against MAX_SEND before anything is encoded.
const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 length of a string without encoding it. */
export function utf8Length(s: string): number {
  // Replies are nearly always ASCII (hex and numbers), and the regular expression engine checks that about ten
  // times faster than a loop in JavaScript: 3 ms rather than 25 for a 5 MB history.
  if (!NON_ASCII.test(s)) return s.length;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}
