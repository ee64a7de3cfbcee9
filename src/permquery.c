/*-------------------------------------------------------------------------
 *
 * permquery.c
 *	  Tokenizer, parser, evaluator and normaliser of permission queries.
 *
 * The grammar is Unkey's (README "Permission queries"):
 *
 *	 query	 = expr EOF
 *	 expr	 = and { OR and }			(left-associative, lowest precedence)
 *	 and	 = primary { AND primary }
 *	 primary = PERMISSION | "(" expr ")"
 *
 * AND and OR are case-insensitive keywords; a permission is a run of
 * [A-Za-z0-9._:*-/] and matches a granted permission exactly (* is literal).
 * The parser is a recursive descent, in the shape of contrib/ltree's
 * ltxtquery_io.c, that emits a postfix program; each operator records where
 * its left operand's root is, so the evaluator can short-circuit.  The
 * input is at most 1,000 characters and 100 levels of parentheses, so the
 * recursion is bounded.  Error messages and byte positions follow Unkey's.
 *
 * No PostgreSQL header is used here: test/fuzz builds this file alone.
 *
 *-------------------------------------------------------------------------
 */
#include "permquery.h"

#include <stdio.h>
#include <string.h>

typedef enum TokType
{
	T_PERM,
	T_AND,
	T_OR,
	T_LPAREN,
	T_RPAREN,
	T_EOF
} TokType;

typedef struct Token
{
	TokType		type;
	int			pos;
	int			len;
} Token;

typedef struct Parser
{
	const char *q;
	int			len;
	Token		toks[PQ_MAX_QUERY_CHARS + 1];
	int			ntoks;
	int			cur;
	PQItem	   *items;
	int			nitems;
	char	   *errmsg;
	bool		failed;
} Parser;

/* Characters a permission name may contain */
static bool
IsPermChar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		c == '.' || c == '_' || c == '-' || c == ':' || c == '*' || c == '/';
}

/* Case-insensitive equality of a token with a lowercase keyword */
static bool
IsKeyword(const char *s, int len, const char *kw)
{
	if ((int) strlen(kw) != len)
		return false;
	for (int i = 0; i < len; i++)
		if ((s[i] | 0x20) != kw[i])
			return false;
	return true;
}

/*
 * Record the first error; later ones are consequences of it.  fmt takes the
 * quoted token (%.*s, when tok is given) and then the position (%d).
 */
static void
Fail(Parser *p, const char *fmt, int pos, const char *tok, int toklen)
{
	if (p->failed)
		return;
	p->failed = true;
	if (tok != NULL)
		snprintf(p->errmsg, PQ_ERRMSG_LEN, fmt, toklen, tok, pos);
	else
		snprintf(p->errmsg, PQ_ERRMSG_LEN, fmt, pos);
}

/* Record an error message that has no position */
static void
FailText(Parser *p, const char *msg)
{
	if (!p->failed)
		snprintf(p->errmsg, PQ_ERRMSG_LEN, "%s", msg);
	p->failed = true;
}

/* Split the query into tokens; the first character outside the grammar is an error */
static void
Tokenize(Parser *p)
{
	int			i = 0;

	while (i < p->len && !p->failed)
	{
		unsigned char c = p->q[i];

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			i++;
		else if (c == '(' || c == ')')
		{
			p->toks[p->ntoks++] = (Token)
			{
				c == '(' ? T_LPAREN : T_RPAREN, i, 1
			};
			i++;
		}
		else if (IsPermChar(c))
		{
			int			start = i;

			while (i < p->len && IsPermChar((unsigned char) p->q[i]))
				i++;
			p->toks[p->ntoks++] = (Token)
			{
				IsKeyword(p->q + start, i - start, "and") ? T_AND :
				IsKeyword(p->q + start, i - start, "or") ? T_OR : T_PERM,
					start, i - start
			};
		}
		else
		{
			/* quote the whole UTF-8 character, at its byte position */
			int			clen = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;

			if (i + clen > p->len)
				clen = p->len - i;
			Fail(p, "Invalid character '%.*s' found in query at position %d. Only letters, numbers, "
				 "dots, underscores, hyphens, slashes, colons, asterisks, and parentheses are allowed.",
				 i, p->q + i, clen);
		}
	}
	p->toks[p->ntoks] = (Token)
	{
		T_EOF, p->len, 0
	};
}

/* Append an item to the postfix program; returns its index */
static int
Emit(Parser *p, PQOp op, int start, int len, int left)
{
	p->items[p->nitems] = (PQItem)
	{
		op, start, len, left
	};
	return p->nitems++;
}

static int	ParseExpr(Parser *p, int depth);

/* primary = PERMISSION | "(" expr ")"; returns the root's index */
static int
ParsePrimary(Parser *p, int depth)
{
	Token	   *t = &p->toks[p->cur];
	int			root;

	if (p->failed)
		return -1;
	if (t->type == T_PERM)
	{
		p->cur++;
		return Emit(p, PQ_LEAF, t->pos, t->len, -1);
	}
	if (t->type == T_LPAREN)
	{
		Token	   *next = &p->toks[p->cur + 1];

		if (next->type == T_RPAREN)
		{
			Fail(p, "Empty parentheses found at position %d. Parentheses must contain at least "
				 "one permission or expression.", next->pos, NULL, 0);
			return -1;
		}
		if (depth >= PQ_MAX_DEPTH)
		{
			Fail(p, "Too many nested parentheses at position %d. At most 100 levels are allowed.",
				 t->pos, NULL, 0);
			return -1;
		}
		p->cur++;
		root = ParseExpr(p, depth + 1);
		if (p->failed)
			return -1;
		t = &p->toks[p->cur];
		if (t->type != T_RPAREN)
		{
			Fail(p, "Missing closing parenthesis ')' at position %d. Every opening parenthesis "
				 "must have a matching closing parenthesis.", t->pos, NULL, 0);
			return -1;
		}
		p->cur++;
		return root;
	}
	if (t->type == T_EOF)
		FailText(p, "Unexpected end of query. Expected a permission identifier or opening "
				 "parenthesis.");
	else
		Fail(p, "Unexpected token '%.*s' at position %d. Expected a permission identifier "
			 "or opening parenthesis.", t->pos, p->q + t->pos, t->len);
	return -1;
}

/* and = primary { AND primary } */
static int
ParseAnd(Parser *p, int depth)
{
	int			left = ParsePrimary(p, depth);

	while (!p->failed && p->toks[p->cur].type == T_AND)
	{
		p->cur++;
		ParsePrimary(p, depth);
		if (!p->failed)
			left = Emit(p, PQ_AND, 0, 0, left);
	}
	return left;
}

/* expr = and { OR and } */
static int
ParseExpr(Parser *p, int depth)
{
	int			left = ParseAnd(p, depth);

	while (!p->failed && p->toks[p->cur].type == T_OR)
	{
		p->cur++;
		ParseAnd(p, depth);
		if (!p->failed)
			left = Emit(p, PQ_OR, 0, 0, left);
	}
	return left;
}

/* Count characters: a UTF-8 continuation byte is not one */
static int
CountChars(const char *s, int len)
{
	int			n = 0;

	for (int i = 0; i < len; i++)
		n += ((unsigned char) s[i] & 0xC0) != 0x80;
	return n;
}

int
pq_parse(const char *query, int len, PQItem *items, char *errmsg)
{
	static Parser p;			/* about 12 kB: too much for a fuzzer's stack */
	int			chars = CountChars(query, len);

	p.ntoks = p.cur = p.nitems = 0;
	p.failed = false;
	p.q = query;
	p.len = len;
	p.items = items;
	p.errmsg = errmsg;

	if (chars > PQ_MAX_QUERY_CHARS)
	{
		snprintf(errmsg, PQ_ERRMSG_LEN, "The query is %d characters long. At most %d are allowed.",
				 chars, PQ_MAX_QUERY_CHARS);
		return -1;
	}
	Tokenize(&p);
	if (!p.failed && p.ntoks == 0)
		FailText(&p, "Unexpected end of input. Please provide a valid permission query.");
	if (!p.failed)
		ParseExpr(&p, 0);
	if (!p.failed && p.toks[p.cur].type != T_EOF)
		Fail(&p, "Unexpected token '%.*s' at position %d. The query appears to have extra content "
			 "after a valid expression.", p.toks[p.cur].pos, p.q + p.toks[p.cur].pos,
			 p.toks[p.cur].len);
	return p.failed ? -1 : p.nitems;
}

/* Evaluate the subtree rooted at item i */
static bool
Eval(const char *q, const PQItem *items, int i, pq_granted granted, void *arg)
{
	const PQItem *it = &items[i];

	switch (it->op)
	{
		case PQ_LEAF:
			return granted(q + it->start, it->len, arg);
		case PQ_AND:
			return Eval(q, items, it->left, granted, arg) && Eval(q, items, i - 1, granted, arg);
		case PQ_OR:
			return Eval(q, items, it->left, granted, arg) || Eval(q, items, i - 1, granted, arg);
	}
	return false;
}

bool
pq_eval(const char *query, const PQItem *items, int nitems, pq_granted granted, void *arg)
{
	return nitems > 0 && Eval(query, items, nitems - 1, granted, arg);
}

/* Print the subtree rooted at item i at out + n; returns the new length */
static int
Print(const char *q, const PQItem *items, int i, char *out, int n)
{
	const PQItem *it = &items[i];

	if (it->op == PQ_LEAF)
	{
		memcpy(out + n, q + it->start, it->len);
		return n + it->len;
	}
	out[n++] = '(';
	n = Print(q, items, it->left, out, n);
	memcpy(out + n, it->op == PQ_AND ? " AND " : " OR ", it->op == PQ_AND ? 5 : 4);
	n += it->op == PQ_AND ? 5 : 4;
	n = Print(q, items, i - 1, out, n);
	out[n++] = ')';
	return n;
}

int
pq_normalize(const char *query, const PQItem *items, int nitems, char *out)
{
	int			n = nitems > 0 ? Print(query, items, nitems - 1, out, 0) : 0;

	out[n] = '\0';
	return n;
}
