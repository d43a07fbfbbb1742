/* Answer extraction and equivalence: table-driven cases, positives and near misses that must be
 * judged wrong. Every equivalence case is checked in both directions (the relation is
 * symmetric) and every answer against itself. */
#include <stdlib.h>
#include <string.h>

#include "eval/answer_parts.h"
#include "eval/eval.h"
#include "testing.h"

/* ---- extraction --------------------------------------------------------------------------------- */

typedef struct {
    const char *response;
    answer_kind kind;
    const char *want; /* NULL: no answer */
} extract_case;

static const extract_case EXTRACT[] = {
    /* boxes */
    {"so the answer is $\\boxed{42}$.", ANSWER_MATH, "42"},
    {"\\boxed{\\frac{1}{2}}", ANSWER_MATH, "\\frac{1}{2}"},
    {"x = \\boxed{\\frac{\\sqrt{3}}{2}}", ANSWER_MATH, "\\frac{\\sqrt{3}}{2}"},
    {"nested \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.", ANSWER_MATH,
     "\\left( 3, \\frac{\\pi}{2} \\right)"},
    {"first \\boxed{1} then, after checking, \\boxed{2}", ANSWER_MATH, "2"},
    {"\\fbox{7}", ANSWER_MATH, "7"},
    {"\\boxed 5 is it", ANSWER_MATH, "5"},
    {"\\boxed{ 12 }", ANSWER_MATH, "12"},
    {"\\boxed{\\text{(C)}}", ANSWER_MATH, "\\text{(C)}"},
    {"set \\boxed{\\{1, 2\\}}", ANSWER_MATH, "\\{1, 2\\}"},
    {"braces \\boxed{a^{b^{c}}}", ANSWER_MATH, "a^{b^{c}}"},
    {"escaped \\boxed{\\}}", ANSWER_MATH, "\\}"},
    {"an early \\boxed{3} and a cut-off \\boxed{\\frac{1", ANSWER_MATH, "3"},
    {"\\boxedfoo{1} is not a box; 9", ANSWER_MATH, "9"},
    {"$\\boxed{3}$ and $\\boxed{-5}$", ANSWER_MATH, "3, -5"},
    {"\\boxed{2}, \\boxed{3}, \\boxed{4}", ANSWER_MATH, "2, 3, 4"},
    {"\\boxed{2} \\text{ or } \\boxed{-2}", ANSWER_MATH, "2, -2"},
    {"\\boxed{4}\n\nSo the final answer is \\boxed{4}", ANSWER_MATH, "4"},
    {"$\\boxed{5}$ $\\boxed{5}$", ANSWER_MATH, "5"},
    {"$d = \\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$ inches.", ANSWER_MATH,
     "15\\frac{39}{40}"},
    {"Case 1 gives \\boxed{2}. Case 2 gives \\boxed{3}", ANSWER_MATH, "3"},
    {"\\boxed{1}. \\boxed{2}", ANSWER_MATH, "2"},
    {"\\boxed{}\nThe answer is 6.", ANSWER_MATH, "6"},
    /* <think> */
    {"<think>maybe \\boxed{1}</think>The answer is \\boxed{2}.", ANSWER_MATH, "2"},
    {"<think>\nlet me see \\boxed{1}\n</think>\n\nFinal: 7", ANSWER_MATH, "7"},
    {"thinking without the opening tag \\boxed{9}</think>\\boxed{10}", ANSWER_MATH, "10"},
    {"<think>still thinking \\boxed{3} and", ANSWER_MATH, NULL},
    {"<think>a</think>b</think>\\boxed{4}", ANSWER_MATH, "4"},
    {"<think>only \\boxed{8}</think>\nno number here", ANSWER_MATH, NULL},
    {"<think>\n\n</think>\n\nThe answer is $\\frac{3}{4}$.", ANSWER_MATH, "\\frac{3}{4}"},
    /* phrase fallbacks */
    {"Therefore, the answer is 18.", ANSWER_MATH, "18"},
    {"The final answer is $\\frac{14}{3}$. I hope it is correct.", ANSWER_MATH, "\\frac{14}{3}"},
    {"The answer is: \\frac{14}{3}", ANSWER_MATH, "\\frac{14}{3}"},
    {"the answer is 3.5.", ANSWER_MATH, "3.5"},
    {"THE ANSWER IS 12 apples. More text.", ANSWER_MATH, "12 apples"},
    {"the answer is \\(x^2\\) indeed", ANSWER_MATH, "x^2"},
    {"the answer is \\[ 2^{10} \\]", ANSWER_MATH, "2^{10}"},
    {"the answer is 1, and later the answer is 2.", ANSWER_MATH, "2"},
    {"Answer: 42", ANSWER_MATH, "42"},
    {"**Answer:** 17\n", ANSWER_MATH, "17"},
    {"Final Answer: $(1, 2)$", ANSWER_MATH, "(1, 2)"},
    {"Work.\n#### 1,234", ANSWER_MATH, "1,234"},
    {"She makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18", ANSWER_MATH, "18"},
    {"Answer: 5\n#### 6", ANSWER_MATH, "5"},
    {"The answer is 3\n#### 4", ANSWER_MATH, "3"},
    /* last number */
    {"so she pays 12 dollars and gets 3 back, leaving 9", ANSWER_MATH, "9"},
    {"total: -4", ANSWER_MATH, "-4"},
    {"x-3 is it", ANSWER_MATH, "3"},
    {"it costs $1,250 in all", ANSWER_MATH, "1,250"},
    {"ratio 3/4", ANSWER_MATH, "3/4"},
    {"pi is about 3.14.", ANSWER_MATH, "3.14"},
    {"no digits at all", ANSWER_MATH, NULL},
    {"", ANSWER_MATH, NULL},
    /* multiple choice */
    {"The correct option is \\boxed{B}", ANSWER_CHOICE, "B"},
    {"\\boxed{(C)}", ANSWER_CHOICE, "C"},
    {"\\boxed{\\text{D}}", ANSWER_CHOICE, "D"},
    {"\\boxed{A) 42}", ANSWER_CHOICE, "A"},
    {"\\boxed{c}", ANSWER_CHOICE, "C"},
    {"The answer is (E).", ANSWER_CHOICE, "E"},
    {"The answer is B because the rest fail.", ANSWER_CHOICE, "B"},
    {"Answer: **C**", ANSWER_CHOICE, "C"},
    {"Answer: C", ANSWER_CHOICE, "C"},
    {"after all that\n(B)", ANSWER_CHOICE, "B"},
    {"after all that\n**D**\n", ANSWER_CHOICE, "D"},
    {"<think>The answer is A</think>The answer is B", ANSWER_CHOICE, "B"},
    {"so we compare.\nThe symbol for antimony is (B) Sb.", ANSWER_CHOICE, "B"},
    {"(A) is wrong.\nSo it is not that one.", ANSWER_CHOICE, NULL},
    {"I think it is a hard one", ANSWER_CHOICE, NULL},
    {"\\boxed{42}", ANSWER_CHOICE, NULL},
    {"The answer is K", ANSWER_CHOICE, NULL},
};

static void test_extract(void) {
    int n = (int)(sizeof EXTRACT / sizeof *EXTRACT);
    for (int i = 0; i < n; i++) {
        const extract_case *c = &EXTRACT[i];
        char *got = NULL;
        int found = answer_extract(&got, c->response, c->kind);
        if (!c->want) {
            EXPECT_MSG(!found && !got, "case %d \"%s\": expected no answer, got \"%s\"", i,
                       c->response, got ? got : "");
        } else {
            EXPECT_MSG(found && got && strcmp(got, c->want) == 0,
                       "case %d \"%s\": expected \"%s\", got \"%s\"", i, c->response, c->want,
                       got ? got : "(none)");
        }
        free(got);
    }
    fprintf(stderr, "    %d extraction cases\n", n);
}

/* ---- equivalence -------------------------------------------------------------------------------- */

typedef struct {
    const char *a, *b;
    int equal;
} equiv_case;

static const equiv_case EQUIV[] = {
    /* integers and decimals */
    {"42", "42", 1},
    {"042", "42", 1},
    {"+7", "7", 1},
    {"-0", "0", 1},
    {"3.50", "3.5", 1},
    {".5", "0.5", 1},
    {"5.", "5", 1},
    {"-2.0", "-2", 1},
    {"123456789012345678901", "123456789012345678901", 1},
    {"-007.50", "-7.5", 1},
    {"0.0", "-0", 1},
    {"100", "100.0", 1},
    {"1.10", "1.1", 1},
    {"-.5", "-0.5", 1},
    {"10", "1.0", 0},
    {"0.10", "0.01", 0},
    {"1 000", "1000", 0},
    {"2", "2.5", 0},
    {"2", "-2", 0},
    {"2", "20", 0},
    {"0.5", "0.05", 0},
    {"123456789012345678901", "123456789012345678902", 0},
    {"99999999999999999999", "100000000000000000000", 0},
    /* thousands separators */
    {"1,000", "1000", 1},
    {"10,\\!080", "10080", 1},
    {"1\\,000\\,000", "1000000", 1},
    {"12,345.5", "12345.5", 1},
    {"-1,000", "-1000", 1},
    {"1,000", "1", 0},
    {"1,000", "100", 0},
    {"10,080", "1008", 0},
    {"1, 000", "1000", 0},
    /* scientific notation */
    {"3e5", "300000", 1},
    {"3 \\times 10^5", "300000", 1},
    {"3\\times10^{5}", "3e5", 1},
    {"1.5 \\cdot 10^{-3}", "0.0015", 1},
    {"2.5E-3", "0.0025", 1},
    {"1.07 \\times 10^{16}", "1.07e16", 1},
    {"6.02\\times 10^{23}", "6.02e23", 1},
    {"2.89\\times10^{-19}", "2.88\\times10^{-19}", 0},
    {"4.57 \\times 10^{-24}", "4.6e-24", 0},
    {"3 \\times 10^5", "3 \\times 10^6", 0},
    {"10^{-14}", "0", 0},
    /* percentages */
    {"50\\%", "50", 1},
    {"50%", "0.5", 1},
    {"12.5\\%", "\\frac{1}{8}", 1},
    {"\\frac{1}{4}", "25\\%", 1},
    {"25 \\%", "25\\%", 1},
    {"50\\%", "5", 0},
    {"50\\%", "0.05", 0},
    {"20\\%", "25\\%", 0},
    /* fractions and mixed numbers */
    {"\\dfrac{1}{2}", "\\frac12", 1},
    {"\\tfrac{3}{4}", "0.75", 1},
    {"\\frac{-1}{2}", "-\\frac12", 1},
    {"-\\frac{1}{2}", "\\frac{1}{-2}", 1},
    {"1/2", "\\frac{1}{2}", 1},
    {"\\frac{14}{3}", "4\\frac{2}{3}", 1},
    {"2\\frac{1}{2}", "2.5", 1},
    {"-2\\frac{1}{2}", "-2.5", 1},
    {"2 1/2", "5/2", 1},
    {"\\frac{6}{8}", "\\frac{3}{4}", 1},
    {"\\frac{3}{56}", "\\dfrac{3}{56}", 1},
    {"\\frac{1}{2}", "\\frac{1}{3}", 0},
    {"\\frac{1}{3}", "0.333", 0},
    {"\\frac{1}{3}", "0.33", 0},
    {"\\frac{2}{3}", "0.67", 0},
    {"2\\frac{1}{2}", "1", 0},
    {"\\frac{3}{4}", "\\frac{4}{3}", 0},
    {"x^2\\frac{1}{2}", "\\frac{x^2}{2}", 1},
    /* LaTeX clean-up */
    {"\\left( 3, \\frac{\\pi}{2} \\right)", "(3,\\frac{\\pi}{2})", 1},
    {"\\$18.90", "18.90", 1},
    {"\\$18.90", "18.9", 1},
    {"90^\\circ", "90", 1},
    {"90^{\\circ}", "90", 1},
    {"90\xc2\xb0", "90", 1},
    {"\\text{Evelyn}", "Evelyn", 1},
    {"$5$", "5", 1},
    {"\\(5\\)", "5", 1},
    {"5 \\text{ cm}", "5", 1},
    {"5\\text{cm}", "5", 1},
    {"100\\text{ square units}", "100", 1},
    {"12 \\mbox{ inches}", "12", 1},
    {"3\\sqrt{2} \\text{ cm}^2", "\\sqrt{18}", 1},
    {"x = 5", "5", 1},
    {"x=\\frac{1}{2}", "0.5", 1},
    {"DE = \\sqrt{51}", "\\sqrt{51}", 1},
    {"p(8) = \\frac{3}{56}", "\\frac{3}{56}", 1},
    {"\\displaystyle\\frac{1}{2}", "0.5", 1},
    {"\\mathbf{5}", "5", 1},
    {"\\textbf{5}", "5", 1},
    {"5.", "5", 1},
    {"\\,5\\,", "5", 1},
    {"1011_2", "1011_{2}", 1},
    {"\\frac{\\sqrt3}{2}", "\\frac{\\sqrt{3}}{2}", 1},
    {"x \\in [2, 5)", "[2,5)", 1},
    {"\xe2\x88\x92" "3", "-3", 1},
    {"2\xc3\x97" "3", "6", 1},
    {"5 \\text{ cm}", "6", 0},
    {"90^\\circ", "45", 0},
    {"x = 5", "6", 0},
    /* radicals, pi, e */
    {"3\\sqrt{13}", "\\sqrt{117}", 1},
    {"\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt3", 1},
    {"\\frac{1}{\\sqrt{2}}", "\\frac{\\sqrt{2}}{2}", 1},
    {"\\sqrt2/2", "\\frac{\\sqrt{2}}{2}", 1},
    {"2\\pi", "\\pi \\cdot 2", 1},
    {"\\frac{\\pi}{4}", "0.25\\pi", 1},
    {"\\sqrt[3]{8}", "2", 1},
    {"\\sqrt[3]{-27}", "-3", 1},
    {"\\sqrt{8}", "2\\sqrt{2}", 1},
    {"\\sqrt{\\frac{9}{4}}", "1.5", 1},
    {"4^{3/2}", "8", 1},
    {"e^2", "e \\cdot e", 1},
    {"\\pi r^2", "r^2\\pi", 1},
    {"2\\sqrt{3}+1", "1+\\sqrt{12}", 1},
    {"\\frac{2\\sqrt{6}}{3}", "\\frac{\\sqrt{24}}{3}", 1},
    {"\\log_2 8", "3", 1},
    {"\\ln(e^3)", "3", 1},
    {"\\sin(\\pi/6)", "\\frac12", 1},
    {"\\cos\\frac{\\pi}{2}", "0", 1},
    {"\\tan^2 x + 1", "\\sec^2 x", 1},
    {"3\\sqrt{13}", "3\\sqrt{12}", 0},
    {"\\sqrt{2}", "1.414", 0},
    {"\\pi", "3.14", 0},
    {"\\pi", "3.14159", 0},
    {"e", "2.718", 0},
    {"\\sqrt{3}/2", "\\sqrt{2}/2", 0},
    {"2\\pi", "\\pi", 0},
    {"\\sqrt{2}+\\sqrt{3}", "\\sqrt{5}", 0},
    /* integers by value */
    {"2^{10}", "1024", 1},
    {"5!", "120", 1},
    {"\\binom{5}{2}", "10", 1},
    {"\\dbinom{10}{3}", "120", 1},
    {"|-3|", "3", 1},
    {"2^{40}", "1099511627776", 1},
    {"2^{40}", "1099511627777", 0},
    {"2^{10}", "1000", 0},
    {"5!", "100", 0},
    {"\\binom{5}{2}", "5", 0},
    {"1/0", "2/0", 0},
    /* algebraic expressions, by value at several points */
    {"x^2+7x+10", "(x+2)(x+5)", 1},
    {"p - q", "-q + p", 1},
    {"2x", "x+x", 1},
    {"\\frac{x+1}{2}", "\\frac{x}{2}+\\frac12", 1},
    {"4a-2", "-2+4a", 1},
    {"(x-1)^2", "x^2-2x+1", 1},
    {"\\sin^2 x + \\cos^2 x", "1", 1},
    {"6 - 5i", "6-5i", 1},
    {"\\frac{1}{2}+\\frac{\\sqrt{3}}{2}i", "\\frac{1+i\\sqrt3}{2}", 1},
    {"2ab", "2ba", 1},
    {"x_1 + x_2", "x_2 + x_1", 1},
    {"\\alpha + \\beta", "\\beta+\\alpha", 1},
    {"y = 2x+3", "y=3+2x", 1},
    {"f(x) = x^2", "x \\cdot x", 1},
    {"\\frac{x^2-1}{x-1}", "x+1", 1},
    {"x^2+1", "x^2-1", 0},
    {"x+1", "x-1", 0},
    {"2x", "x^2", 0},
    {"|x|", "x", 0},
    {"\\sqrt{x^2}", "x", 0},
    {"6-5i", "6+5i", 0},
    {"p - q", "q - p", 0},
    {"x_1 + x_2", "x_1 + x_3", 0},
    {"y=2x+3", "y=2x-3", 0},
    {"\\sin x", "\\cos x", 0},
    {"ab", "a+b", 0},
    /* tuples and intervals: ordered, brackets matter */
    {"(1,2)", "(1, 2)", 1},
    {"(3, \\frac{\\pi}{2})", "\\left(3,\\frac{\\pi}{2}\\right)", 1},
    {"(0.5, 2)", "(\\frac12, 2)", 1},
    {"(1, 2, 3)", "(1,2,3)", 1},
    {"(-\\infty, 3]", "(-\\infty,3]", 1},
    {"[1, 2)", "[1,2)", 1},
    {"(-\\infty,-1] \\cup [1,\\infty)", "[1, \\infty) \\cup (-\\infty, -1]", 1},
    {"(1, 2)", "1, 2", 1},
    {"\\langle 1, 2 \\rangle", "(1,2)", 1},
    {"((1,2),(3,4))", "((1, 2), (3, 4))", 1},
    {"(1,2)", "(2,1)", 0},
    {"[1,2)", "(1,2)", 0},
    {"[1,2]", "[1,2)", 0},
    {"(1,2]", "[1,2]", 0},
    {"(-\\infty, 3)", "(-\\infty, 3]", 0},
    {"(-\\infty, 3)", "(\\infty, 3)", 0},
    {"(3, \\frac{\\pi}{2})", "(3, \\frac{\\pi}{3})", 0},
    {"(1,2,3)", "(1,2)", 0},
    {"(1, 2)", "2, 1", 0},
    {"[1, 2]", "1, 2", 0},
    {"(0,1) \\cup (2,3)", "(0,1) \\cup (2,4)", 0},
    {"(0,1) \\cup (2,3)", "(0,1)", 0},
    /* sets and answer lists: any order, same size */
    {"\\{1,2,3\\}", "\\{3,2,1\\}", 1},
    {"\\{1, 2\\}", "1, 2", 1},
    {"1, 2", "2, 1", 1},
    {"3, -5", "-5,3", 1},
    {"x=1, x=2", "1, 2", 1},
    {"2 \\text{ and } 3", "3, 2", 1},
    {"2 or -2", "-2, 2", 1},
    {"x = 1; y = 2", "1, 2", 1},
    {"(x, y) = (1, 2)", "(1,2)", 1},
    {"x=1, y=2", "(1, 2)", 1},
    {"x=2, y=1", "(1, 2)", 0},
    {"(1,9), (-4,-56)", "(-4,-56), (1,9)", 1},
    {"\\frac{1}{2}, \\frac{1}{3}", "0.5, \\frac13", 1},
    {"\\emptyset", "\\{\\}", 1},
    {"\\varnothing", "\\emptyset", 1},
    {"\\{1,2\\}", "\\{1,2,3\\}", 0},
    {"1, 2", "1, 2, 3", 0},
    {"1, 1, 2", "1, 2", 0},
    {"1, 1, 2", "1, 2, 2", 0},
    {"3, 7", "3, 8", 0},
    {"\\{1\\}", "1", 0},
    {"\\emptyset", "0", 0},
    /* plus-minus */
    {"1 \\pm \\sqrt{2}", "1+\\sqrt{2}, 1-\\sqrt{2}", 1},
    {"\\pm 3", "3, -3", 1},
    {"x = \\pm 2", "-2, 2", 1},
    {"1 \\pm \\sqrt{2}", "1+\\sqrt{2}", 0},
    {"\\pm 3", "3", 0},
    /* matrices and vectors */
    {"\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 1},
    {"\\begin{pmatrix} 0.5 & 1 \\\\ 2 & 3 \\end{pmatrix}",
     "\\begin{bmatrix}\\frac12&1\\\\2&3\\end{bmatrix}", 1},
    {"\\begin{pmatrix} 3 \\\\ 2 \\\\ -6 \\end{pmatrix}", "(3, 2, -6)", 1},
    {"\\begin{pmatrix} 1 \\\\ 2 \\\\ \\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 1},
    {"\\begin{pmatrix}1\\\\2\\end{pmatrix}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", 0},
    {"\\begin{pmatrix}1&2\\end{pmatrix}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", 0},
    {"\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}", "\\begin{pmatrix}1&3\\\\2&4\\end{pmatrix}", 0},
    {"\\begin{pmatrix} 3 \\\\ 2 \\end{pmatrix}", "[3, 2]", 0},
    /* relations */
    {"2x + 3y = 5", "3y+2x=5", 1},
    {"x < 3", "3 > x", 1},
    {"x \\le 3", "x<=3", 1},
    {"x \\geq -1", "-1 \\leq x", 1},
    {"a \\neq 0", "a \\ne 0", 1},
    {"x<3", "x<=3", 0},
    {"x<3", "x>3", 0},
    {"2x + 3y = 5", "2x+3y=6", 0},
    /* text answers */
    {"Yes", "yes", 1},
    {"\\text{YES}", "yes", 1},
    {"No.", "no", 1},
    {"\\text{even}", "even", 1},
    {"\\text{Evelyn}", "evelyn", 1},
    {"\\text{No solution}", "nosolution", 1},
    {"4:30 p.m.", "4:30 pm", 1},
    {"The parabola", "parabola", 1},
    {"Evelyn", "Evelny", 0},
    {"yes", "no", 0},
    {"\\text{even}", "\\text{odd}", 0},
    {"\\text{even}", "\\text{neither}", 0},
    {"4:30 p.m.", "4:30 a.m.", 0},
    {"yes", "1", 0},
    {"5 apples", "5", 0},
    /* nothing to compare */
    {"", "5", 0},
    {"5", "", 0},
    {"   ", "   ", 0},
    {"\\frac{", "\\frac{1}{2}", 0},
    {"(", ")", 0},
};

static void test_equiv(void) {
    int n = (int)(sizeof EQUIV / sizeof *EQUIV);
    for (int i = 0; i < n; i++) {
        const equiv_case *c = &EQUIV[i];
        int ab = answer_equiv(c->a, c->b, ANSWER_MATH);
        int ba = answer_equiv(c->b, c->a, ANSWER_MATH);
        EXPECT_MSG(ab == c->equal, "case %d: \"%s\" vs \"%s\": expected %s", i, c->a, c->b,
                   c->equal ? "equal" : "different");
        EXPECT_MSG(ba == ab, "case %d: not symmetric: \"%s\" vs \"%s\"", i, c->a, c->b);
        /* every non-blank answer equals itself */
        if (strspn(c->a, " ") != strlen(c->a))
            EXPECT_MSG(answer_equiv(c->a, c->a, ANSWER_MATH), "case %d: \"%s\" != itself", i, c->a);
    }
    fprintf(stderr, "    %d equivalence cases (each both ways and reflexive)\n", n);
}

/* ---- multiple choice ------------------------------------------------------------------------------ */

static void test_choice(void) {
    EXPECT(answer_gold_kind("C") == ANSWER_CHOICE);
    EXPECT(answer_gold_kind("(C)") == ANSWER_CHOICE);
    EXPECT(answer_gold_kind("\\text{(C)}") == ANSWER_CHOICE);
    EXPECT(answer_gold_kind("$J$") == ANSWER_CHOICE);
    EXPECT(answer_gold_kind("K") == ANSWER_MATH);
    EXPECT(answer_gold_kind("c") == ANSWER_MATH);
    EXPECT(answer_gold_kind("C) 42") == ANSWER_MATH);
    EXPECT(answer_gold_kind("42") == ANSWER_MATH);
    EXPECT(answer_gold_kind("Evelyn") == ANSWER_MATH);
    EXPECT(answer_equiv("(B)", "B", ANSWER_CHOICE));
    EXPECT(answer_equiv("b", "\\text{(B)}", ANSWER_CHOICE));
    EXPECT(answer_equiv("B) 12", "B", ANSWER_CHOICE));
    EXPECT(!answer_equiv("A", "B", ANSWER_CHOICE));
    EXPECT(!answer_equiv("12", "B", ANSWER_CHOICE));
    EXPECT(!answer_equiv("", "B", ANSWER_CHOICE));
    EXPECT_EQ_INT(choice_letter("**C**", 1), 'C');
    EXPECT_EQ_INT(choice_letter("[D]", 1), 'D');
    EXPECT_EQ_INT(choice_letter("Option E", 0), 'E');
    EXPECT_EQ_INT(choice_letter("Option E", 1), 0);
    EXPECT_EQ_INT(choice_letter("AB", 0), 0);
}

/* ---- whole verdicts ------------------------------------------------------------------------------ */

static void test_verify(void) {
    static const struct {
        const char *response, *gold;
        int found, correct;
    } CASES[] = {
        {"<think>2+2</think>The answer is $\\boxed{4}$.", "4", 1, 1},
        {"<think>2+2</think>The answer is $\\boxed{5}$.", "4", 1, 0},
        {"<think>2+2 is \\boxed{4}", "4", 0, 0},
        {"We get \\boxed{\\dfrac{14}{3}}", "\\frac{14}{3}", 1, 1},
        {"We get \\boxed{4\\frac{2}{3}}", "\\frac{14}{3}", 1, 1},
        {"We get \\boxed{4.67}", "\\frac{14}{3}", 1, 0},
        {"so \\boxed{(3, \\frac{\\pi}{2})}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1, 1},
        {"so \\boxed{(\\frac{\\pi}{2}, 3)}", "\\left( 3, \\frac{\\pi}{2} \\right)", 1, 0},
        {"Thus $\\boxed{90^\\circ}$.", "90^\\circ", 1, 1},
        {"The answer is (B).", "B", 1, 1},
        {"The answer is (B).", "(C)", 1, 0},
        {"#### 1,000", "1000", 1, 1},
        {"Answer: yes", "\\text{Yes}", 1, 1},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        answer_verdict v;
        answer_verify(&v, CASES[i].response, CASES[i].gold);
        EXPECT_MSG((v.extracted != NULL) == CASES[i].found && v.correct == CASES[i].correct,
                   "verify case %zu: extracted \"%s\", correct %d", i,
                   v.extracted ? v.extracted : "(none)", v.correct);
        answer_verdict_free(&v);
    }
}

/* ---- normalisation details ------------------------------------------------------------------------ */

static void test_normalize(void) {
    static const struct {
        const char *in, *out;
    } CASES[] = {
        {"\\left( 3, \\frac{\\pi}{2} \\right)", "( 3, \\frac{\\pi}{2} )"},
        {"\\dfrac12", "\\frac{1}{2}"},
        {"\\frac1{x}", "\\frac{1}{x}"},
        {"\\frac\\pi2", "\\frac{\\pi}{2}"},
        {"\\sqrt2", "\\sqrt{2}"},
        {"\\sqrt[3]x", "\\sqrt[3]{x}"},
        {"x^{2}", "x^2"},
        {"a_{1}", "a_1"},
        {"90^{\\circ}", "90"},
        {"\\text{ cm}", "cm"},
        {"$\\$5$", "5"},
        {"{5}", "5"},
        {"{{5}}", "5"},
        {"5.", "5"},
        {"  a   b  ", "a b"},
        {"\\left.\\frac{1}{2}\\right|", "\\frac{1}{2}|"},
        {"1,\\!000", "1,000"},
        {"x \\cdot y", "x * y"},
        {"a \\le b", "a <= b"},
        {"\\pi r", "\\pi r"},
        {"\\hspace{1cm}5", "5"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) {
        char *got = latex_normalize(CASES[i].in);
        EXPECT_MSG(strcmp(got, CASES[i].out) == 0, "normalize \"%s\": expected \"%s\", got \"%s\"",
                   CASES[i].in, CASES[i].out, got);
        free(got);
    }
    char *k = text_key("The  Parabola!");
    EXPECT_STREQ(k, "parabola");
    free(k);
    EXPECT(is_texty("Evelyn"));
    EXPECT(is_texty("no"));
    EXPECT(!is_texty("\\sqrt{2}"));
    EXPECT(!is_texty("x^2+\\sin x"));
    EXPECT(is_decimal_literal("-3.50"));
    EXPECT(!is_decimal_literal("1e5"));
    EXPECT_EQ_INT(math_expr_compare("1+", "1"), -1);
    EXPECT_EQ_INT(math_expr_compare("2+2", "4"), 1);
    EXPECT_EQ_INT(math_expr_compare("2+2", "5"), 0);
}

/* ---- hostile inputs: bounded work, no crash ------------------------------------------------------- */

static char *repeat(const char *unit, int times, const char *middle) {
    size_t u = strlen(unit), m = strlen(middle);
    char *s = malloc(u * (size_t)times * 2 + m + 1);
    size_t n = 0;
    for (int i = 0; i < times; i++, n += u) memcpy(s + n, unit, u);
    memcpy(s + n, middle, m);
    n += m;
    s[n] = 0;
    return s;
}

static void test_hostile(void) {
    /* deep nesting far past the parser's depth cap */
    char *open = repeat("(", 20000, "1");
    size_t n = strlen(open);
    char *deep = malloc(n + 20001);
    memcpy(deep, open, n);
    memset(deep + n, ')', 20000);
    deep[n + 20000] = 0;
    EXPECT(answer_equiv(deep, deep, ANSWER_MATH)); /* identical text is still equal */
    EXPECT(!answer_equiv(deep, "1", ANSWER_MATH));
    char *fracs = repeat("\\frac{1}{", 3000, "2");
    EXPECT(!answer_equiv(fracs, "0.5", ANSWER_MATH));
    /* long sums: more nodes than the parser keeps */
    char *sum = repeat("1+", 3000, "1");
    EXPECT(!answer_equiv(sum, "3001", ANSWER_MATH));
    char *boxes = repeat("\\boxed{", 5000, "7");
    char *got = NULL;
    EXPECT(!answer_extract(&got, boxes, ANSWER_MATH) || got);
    free(got);
    char *braces = repeat("{", 5000, "x");
    EXPECT(!answer_equiv(braces, "y", ANSWER_MATH));
    char *pows = repeat("2^", 5000, "2");
    EXPECT(!answer_equiv(pows, "4", ANSWER_MATH));
    char *bars = repeat("|", 5000, "");
    EXPECT(!answer_equiv(bars, "1", ANSWER_MATH));
    char *sets = repeat("\\{", 2000, "1");
    EXPECT(!answer_equiv(sets, "1", ANSWER_MATH));
    char *tuples = repeat("(1,", 2000, "2");
    EXPECT(!answer_equiv(tuples, "(1,2)", ANSWER_MATH));
    /* overflow is not infinity: two huge different numbers are not equal */
    EXPECT(!answer_equiv("10^{100000}", "10^{100001}", ANSWER_MATH));
    EXPECT(answer_equiv("-\\infty", "-\\infty", ANSWER_MATH));
    EXPECT(!answer_equiv("1000!", "1001!", ANSWER_MATH));
    free(open);
    free(deep);
    free(fracs);
    free(sum);
    free(boxes);
    free(braces);
    free(pows);
    free(bars);
    free(sets);
    free(tuples);
}

int main(void) {
    RUN(test_extract);
    RUN(test_equiv);
    RUN(test_choice);
    RUN(test_verify);
    RUN(test_normalize);
    RUN(test_hostile);
    TESTS_DONE();
}
