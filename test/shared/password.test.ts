import { inspect } from 'node:util';
import { GENERATED_PASSWORD_LENGTH, Secret, generatePassword } from '../../shared/core/password';

describe('generatePassword', () => {
  it('meets Entra complexity: long enough and all four character classes', () => {
    for (let i = 0; i < 200; i++) {
      const password = generatePassword().reveal();
      expect(password).toHaveLength(GENERATED_PASSWORD_LENGTH);
      expect(password).toMatch(/[A-Z]/);
      expect(password).toMatch(/[a-z]/);
      expect(password).toMatch(/[0-9]/);
      expect(password).toMatch(/[^A-Za-z0-9]/);
      expect(password).not.toMatch(/[\s"'\\]/);
    }
  });

  it('does not repeat itself', () => {
    const seen = new Set(Array.from({ length: 500 }, () => generatePassword().reveal()));
    expect(seen.size).toBe(500);
  });

  it('refuses lengths below 16', () => {
    expect(() => generatePassword(12)).toThrow(RangeError);
  });
});

describe('Secret', () => {
  it('never turns into text by accident', () => {
    const secret = new Secret('Hunter2-very-secret!');
    const renderings = [
      String(secret),
      `${secret.toString()}`,
      JSON.stringify({ secret }),
      inspect(secret),
      inspect({ nested: { secret } }),
    ];
    for (const text of renderings) expect(text).not.toContain('Hunter2');
    expect(secret.reveal()).toBe('Hunter2-very-secret!');
  });
});
